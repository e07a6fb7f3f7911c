// The Node.js reference: panva's oidc-provider with client credentials issuing RS256 JWT access
// tokens (as the IdP does), one process per core (node:cluster), state in memory (its default
// adapter). Started by bench/reference.py with PORT, WORKERS and CLIENT_SECRET.
import cluster from 'node:cluster';
import { generateKeyPairSync } from 'node:crypto';
import os from 'node:os';

const port = Number(process.env.PORT);
const workers = Number(process.env.WORKERS || os.availableParallelism());

if (cluster.isPrimary) {
  const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  for (let i = 0; i < workers; i += 1) cluster.fork({ SIGNING_KEY: JSON.stringify(jwk) });
} else {
  const { default: Provider } = await import('oidc-provider');
  const audience = 'https://api.example.lu';
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [{
      client_id: 'machine',
      client_secret: process.env.CLIENT_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [{ ...JSON.parse(process.env.SIGNING_KEY), kid: 'bench-rs256', alg: 'RS256', use: 'sig' }] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: 'api', audience, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
      },
    },
  });
  provider.listen(port, '127.0.0.1');
}
