// panva's oidc-provider with its in-memory defaults, configured for the client_credentials
// grant only: the comparison point for bench/client_credentials.sh. PORT is the port.
import Provider from 'oidc-provider'

const port = Number(process.env.PORT || 3000)
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'svc',
    client_secret: 'bench-secret-bench-secret-bench-secret-00',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'api:read'
  }],
  scopes: ['api:read'],
  features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } }
})
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${port}`))
