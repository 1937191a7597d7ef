// A relying party built with panva's openid-client (not written here) against Kizuna:
// discovery; PAR + authorization code + PKCE with private_key_jwt; ID token and UserInfo;
// refresh, introspection and revocation; client_credentials with private_key_jwt.
// Run by tests/node_rp.rs with ISSUER, RP_KIZUNA, RP_USER and RP_PASSWORD set; the
// kizuna commands it runs share the test's environment (same database).
import * as client from 'openid-client'
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import assert from 'node:assert/strict'

const issuer = new URL(process.env.ISSUER)
const CALLBACK = 'https://rp.city.example/callback'

function kizuna (args) {
  return JSON.parse(execFileSync(process.env.RP_KIZUNA, args, { encoding: 'utf8' }))
}

// The client's key pair: the private key stays here; Kizuna gets the public JWK Set.
const { privateKey, publicKey } = await crypto.subtle.generateKey(
  { name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
const jwk = { ...(await crypto.subtle.exportKey('jwk', publicKey)), kid: 'node-rp-1', alg: 'ES256', use: 'sig' }
writeFileSync('node-rp-jwks.json', JSON.stringify({ keys: [jwk] }))
const auth = client.PrivateKeyJwt({ key: privateKey, kid: 'node-rp-1' })

const web = kizuna(['client', 'create', '--name', 'Childcare portal', '--redirect-uri', CALLBACK,
  '--jwks-file', 'node-rp-jwks.json', '--require-par', '--json'])
const service = kizuna(['client', 'create', '--name', 'Sensor hub', '--grant-type', 'client_credentials',
  '--scope', 'sensors:read', '--scope', 'sensors:write', '--jwks-file', 'node-rp-jwks.json', '--json'])
assert.equal(web.auth_method, 'private_key_jwt')

// A browser: follows redirects inside Kizuna, keeps cookies, fills the sign-in and consent forms.
const cookies = new Map()
function cookieHeader () { return [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') }
function remember (response) {
  for (const c of response.headers.getSetCookie()) {
    const [pair] = c.split(';')
    const i = pair.indexOf('=')
    cookies.set(pair.slice(0, i), pair.slice(i + 1))
  }
}
function field (html, name) {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`))
  return m ? m[1].replaceAll('&amp;', '&') : ''
}
async function request (url, body) {
  const response = await fetch(url, {
    method: body ? 'POST' : 'GET',
    redirect: 'manual',
    headers: {
      cookie: cookieHeader(),
      accept: 'text/html',
      ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {})
    },
    body: body ? new URLSearchParams(body) : undefined
  })
  remember(response)
  return response
}
async function browse (start) {
  let url = new URL(start)
  for (let i = 0; i < 20; i++) {
    let response = await request(url)
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get('location'), url)
      if (url.origin !== issuer.origin) return url
      continue
    }
    const html = await response.text()
    if (url.pathname === '/login') {
      response = await request(new URL('/login', issuer), {
        csrf_token: field(html, 'csrf_token'), req: field(html, 'req'), next: field(html, 'next'),
        username: process.env.RP_USER, password: process.env.RP_PASSWORD
      })
    } else if (url.pathname === '/consent') {
      response = await request(new URL('/consent', issuer), {
        csrf_token: field(html, 'csrf_token'), req: field(html, 'req'), decision: 'approve'
      })
    } else {
      throw new Error(`stopped at ${url} (${response.status}): ${html}`)
    }
    assert.equal(response.status, 303, `form post to ${url.pathname}`)
    url = new URL(response.headers.get('location'), url)
    if (url.origin !== issuer.origin) return url
  }
  throw new Error('too many redirects')
}

const config = await client.discovery(issuer, web.client_id, {}, auth)
assert.equal(config.serverMetadata().pushed_authorization_request_endpoint, new URL('/par', issuer).href)

const verifier = client.randomPKCECodeVerifier()
const state = client.randomState()
const nonce = client.randomNonce()
const authorizationUrl = await client.buildAuthorizationUrlWithPAR(config, {
  redirect_uri: CALLBACK,
  scope: 'openid email profile',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce
})
assert.ok(authorizationUrl.searchParams.get('request_uri').startsWith('urn:ietf:params:oauth:request_uri:'))
const callback = await browse(authorizationUrl)
const tokens = await client.authorizationCodeGrant(config, callback, {
  pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true
})
const claims = tokens.claims()
assert.equal(claims.preferred_username, process.env.RP_USER)
assert.equal(claims.email, `${process.env.RP_USER}@city.example.jp`)

const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
assert.equal(info.email, claims.email)

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
assert.notEqual(refreshed.refresh_token, tokens.refresh_token)
assert.equal((await client.tokenIntrospection(config, refreshed.access_token)).active, true)
await client.tokenRevocation(config, refreshed.refresh_token)
assert.equal((await client.tokenIntrospection(config, refreshed.access_token)).active, false)

const serviceConfig = await client.discovery(issuer, service.client_id, {}, auth)
const serviceTokens = await client.clientCredentialsGrant(serviceConfig, { scope: 'sensors:read' })
assert.equal(serviceTokens.token_type.toLowerCase(), 'bearer')
assert.equal(serviceTokens.scope, 'sensors:read')
const serviceIntrospection = await client.tokenIntrospection(serviceConfig, serviceTokens.access_token)
assert.equal(serviceIntrospection.sub, service.client_id)

console.log(JSON.stringify({ ok: true, sub: claims.sub, service: service.client_id }))
