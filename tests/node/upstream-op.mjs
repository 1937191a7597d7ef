// panva's oidc-provider as an organization's identity provider upstream of Kizuna (the
// federation tests and bench/federation.sh). PORT is the port; CLIENTS a JSON array of client
// registrations; ACCOUNTS a JSON object of login -> {claims, acr, amr}; SCOPE_CLAIMS (optional)
// a JSON object of scope -> claims and ACR_VALUES (optional) a JSON array, for a provider
// shaped like another (the My Number card OP's attribute scopes). The login page takes
// only a login name (the account table stands in for a real password check); consent is
// granted for the requested scopes.
import Provider from 'oidc-provider'

const port = Number(process.env.PORT || 3000)
const accounts = JSON.parse(process.env.ACCOUNTS || '{}')
const issuer = `http://127.0.0.1:${port}`
const scopeClaims = process.env.SCOPE_CLAIMS
  ? JSON.parse(process.env.SCOPE_CLAIMS)
  : {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'birthdate', 'name_kana'],
      address: ['address'],
      groups: ['groups']
    }

const provider = new Provider(issuer, {
  clients: JSON.parse(process.env.CLIENTS || '[]'),
  findAccount: async (ctx, id) => {
    const account = accounts[id]
    if (!account) return undefined
    return { accountId: id, claims: async () => ({ sub: id, ...account.claims }) }
  },
  claims: scopeClaims,
  scopes: Object.keys(scopeClaims),
  acrValues: JSON.parse(process.env.ACR_VALUES || '["aal1", "aal2", "aal3"]'),
  pkce: { required: () => true },
  cookies: { keys: ['upstream-op-test-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true }
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // Kizuna's JWK Set and back-channel logout endpoint are on loopback in the tests, which
  // oidc-provider's SSRF guard (its default dispatcher) refuses.
  fetch: (url, options) => globalThis.fetch(url, { ...options, dispatcher: undefined }),
  ttl: { Session: 3600, Interaction: 600, Grant: 3600, IdToken: 600, AccessToken: 600 }
})

async function formBody (req) {
  let text = ''
  for await (const chunk of req) text += chunk
  return new URLSearchParams(text)
}

async function finish (ctx, details, login) {
  const account = accounts[login]
  const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id })
  grant.addOIDCScope(details.params.scope)
  const grantId = await grant.save()
  const result = {
    login: { accountId: login, acr: account.acr, amr: account.amr },
    consent: { grantId }
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false })
  ctx.status = 303
  ctx.redirect(to)
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)$/)
  if (!match) return next()
  const details = await provider.interactionDetails(ctx.req, ctx.res)
  if (ctx.method === 'GET') {
    if (details.session?.accountId && accounts[details.session.accountId]) {
      return finish(ctx, details, details.session.accountId)
    }
    ctx.type = 'html'
    ctx.body = `<!doctype html><title>Upstream sign-in</title><form method="post" action="/interaction/${match[1]}">` +
      `<label>login <input name="login"></label><button type="submit">Sign in</button></form>`
    return
  }
  const body = await formBody(ctx.req)
  const login = body.get('login')
  if (!accounts[login]) {
    ctx.status = 401
    ctx.body = 'unknown login'
    return
  }
  return finish(ctx, details, login)
})

provider.listen(port, '127.0.0.1', () => console.log(`upstream oidc-provider listening on ${port}`))
for (const event of ['grant.error', 'server_error', 'backchannel.error', 'end_session.error']) {
  provider.on(event, (...args) => console.error(event, args[args.length - 1]))
}
