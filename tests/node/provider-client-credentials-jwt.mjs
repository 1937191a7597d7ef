// panva's oidc-provider configured for the client_credentials grant with JWT access tokens
// signed ES256 (as Kizuna's are): the comparison point for bench/compare (issue #20). A
// default resource indicator names a resource server whose tokens are JWTs, so every grant
// signs a token instead of storing an opaque one. In-memory adapter, no audit trail.
// PORT is the port.
import { generateKeyPairSync } from 'node:crypto'
import Provider from 'oidc-provider'

const port = Number(process.env.PORT || 3000)
const resource = 'https://api.bench.example'
const signing = {
  ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
  kid: 'bench-es256',
  alg: 'ES256',
  use: 'sig'
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks: { keys: [signing] },
  clients: [{
    client_id: 'svc',
    client_secret: 'bench-secret-bench-secret-bench-secret-00',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
    scope: 'api:read'
  }],
  scopes: ['api:read'],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api:read',
        audience: resource,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } }
      })
    }
  }
})
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider (JWT access tokens) listening on ${port}`))
