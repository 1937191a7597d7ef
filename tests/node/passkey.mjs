// Headless Chromium (Debian's, driven by playwright-core) with Chromium's virtual
// authenticator (CDP WebAuthn domain) against Kizuna: sign in with the password, register a
// passkey on the account page, sign out, sign in passwordless with the passkey for a relying
// party that requires AAL2, and finish the code flow with panva's openid-client, checking
// amr/acr in the ID token; the sign-in page also starts the autofill (conditional UI)
// request, whose list cannot be picked from headless. Run by tests/browser_passkey.rs with ISSUER (http://localhost:…),
// RP_KIZUNA, RP_USER and RP_PASSWORD set.
import { chromium } from 'playwright-core'
import * as client from 'openid-client'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer } from 'node:http'
import { join } from 'node:path'
import assert from 'node:assert/strict'

const issuer = new URL(process.env.ISSUER)
// The relying party's redirect URI: a small server that records where the browser came back.
let callback = null
const rpServer = createServer((req, res) => {
  const url = new URL(req.url, `http://${req.headers.host}`)
  if (url.pathname === '/callback') callback = url.href
  res.end('relying party')
})
await new Promise((resolve) => rpServer.listen(0, '127.0.0.1', resolve))
const CALLBACK = `http://localhost:${rpServer.address().port}/callback`
const kizuna = (args) => JSON.parse(execFileSync(process.env.RP_KIZUNA, args, { encoding: 'utf8' }))
const rp = kizuna(['client', 'create', '--name', 'Tax office', '--redirect-uri', CALLBACK,
  '--min-aal', '2', '--no-consent', '--json'])

const profile = mkdtempSync(join(tmpdir(), 'kizuna-chromium-'))
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  locale: 'en-US'
})
const step = (what) => console.error(`[passkey.mjs] ${what}`)
try {
  const page = browser.pages()[0] || await browser.newPage()
  page.setDefaultTimeout(20000)
  // This page takes the button path: the browser offers no passkey autofill here.
  await page.addInitScript(() => {
    window.PublicKeyCredential.isConditionalMediationAvailable = async () => false
  })
  const cdp = await browser.newCDPSession(page)
  await cdp.send('WebAuthn.enable')
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true
    }
  })

  step('password sign-in to the account page')
  await page.goto(new URL('/login?next=/account', issuer).href)
  await page.fill('#username', process.env.RP_USER)
  await page.fill('#password', process.env.RP_PASSWORD)
  await Promise.all([page.waitForURL('**/account'), page.click('form[action="/login"] button[type=submit]')])

  step('register a passkey')
  await page.click('a[href="/account/passkeys/new"]')
  await page.fill('#passkey-name', 'Headless Chromium')
  await Promise.all([page.waitForURL('**/account?done=passkey_added'), page.click('#passkey-create')])
  assert.match(await page.content(), /Headless Chromium/)
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId })
  assert.equal(credentials.length, 1)
  assert.equal(credentials[0].isResidentCredential, true, 'a discoverable credential')

  step('sign out')
  await page.goto(new URL('/', issuer).href)
  await Promise.all([page.waitForLoadState('load'), page.click('form[action="/logout/confirm"] button')])
  await page.goto(new URL('/account', issuer).href)
  assert.match(page.url(), /\/login\?next=/, 'signed out')

  const config = await client.discovery(issuer, rp.client_id, undefined, client.ClientSecretBasic(rp.client_secret),
    { execute: [client.allowInsecureRequests] })
  // Signs in for the relying party; `act` makes the passkey answer. Returns the claims.
  async function signIn (act) {
    const verifier = client.randomPKCECodeVerifier()
    const state = client.randomState()
    const authorize = client.buildAuthorizationUrl(config, {
      redirect_uri: CALLBACK,
      scope: 'openid profile',
      state,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256'
    })
    callback = null
    await act(authorize.href)
    assert.ok(callback, 'the browser came back to the relying party')
    const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
      pkceCodeVerifier: verifier,
      expectedState: state
    })
    const claims = tokens.claims()
    assert.ok(['urn:kizuna:aal:2', 'urn:kizuna:aal:3'].includes(claims.acr), `acr ${claims.acr}`)
    assert.ok(claims.amr.includes('user') && claims.amr.includes('mfa'), `amr ${claims.amr}`)
    assert.ok(claims.amr.includes('hwk') || claims.amr.includes('swk'), `amr ${claims.amr}`)
    assert.ok(!claims.amr.includes('pwd'), 'no password was used')
    return claims
  }

  step('passwordless sign-in (button) for an AAL2 relying party, code exchange by openid-client')
  const claims = await signIn(async (url) => {
    await page.goto(url)
    assert.match(page.url(), /\/login\?req=/)
    assert.equal(await page.getAttribute('#username', 'autocomplete'), 'username webauthn', 'autofill offers passkeys')
    await Promise.all([page.waitForURL(CALLBACK + '**'), page.click('#passkey-sign-in')])
  })

  step('the sign-in page offers passkeys in the username autofill (conditional UI)')
  const fresh = await browser.newPage()
  await fresh.goto(new URL('/login', issuer).href)
  // Chromium supports conditional mediation, so the page has started the autofill request;
  // picking the passkey from the autofill list cannot be driven headless.
  assert.equal(await fresh.evaluate(() => PublicKeyCredential.isConditionalMediationAvailable()), true)
  assert.equal(await fresh.getAttribute('#username', 'autocomplete'), 'username webauthn')
  console.log(JSON.stringify({ sub: claims.sub, acr: claims.acr, amr: claims.amr }))
} finally {
  rpServer.close()
  await browser.close()
  rmSync(profile, { recursive: true, force: true })
}
