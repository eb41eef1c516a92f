// A real OpenID provider (panva/oidc-provider) on loopback, for NeuroX's sign-in tests only.
//
//   node provider.mjs <config.json>
//
// config.json: {"port": 51234, "clients": [{client_id, client_secret, redirect_uris}], "accounts_file": "..."}
// The accounts file maps a login (which is also the `sub`) to the claims released for it; it is read again on
// every request, so a test can change a person's claims between two sign-ins. Sign-in uses the library's
// development pages (any password; "[ Cancel ]" refuses the request with access_denied). Prints one line,
// "listening <issuer>", once it accepts connections.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

const readAccounts = () => JSON.parse(readFileSync(config.accounts_file, 'utf8'));

// A fresh signing key per run: the relying party must fetch it from jwks_uri, as it would in production.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `test-${randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name', 'given_name', 'family_name'],
    groups: ['groups', 'eduperson_affiliation'],
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, sub) {
    const claims = readAccounts()[sub];
    if (!claims) return undefined;
    return { accountId: sub, async claims() { return { ...claims, sub }; } };
  },
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
server.on('error', (error) => {
  console.error(`cannot listen on ${issuer}: ${error.message}`);
  process.exit(1);
});
// Do not outlive the test process that started us.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1000).unref();
