// A real OpenID Provider for authgate's end-to-end tests, built on oidc-provider 8.8.1.
// Usage: node op.mjs <config.json>      (see README.md for the config and the HTML flow)
// stdout: exactly one line, {"ready":true,"port":N,"issuer":"http://127.0.0.1:N"}; logs go to stderr.
import { readFileSync } from 'node:fs';
import * as http from 'node:http';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

// oidc-provider prints its "you SHOULD change ..." notices with console.info (stdout); keep stdout
// for the single ready line.
console.log = console.info = (...args) => console.error(...args);

const cfg = process.argv[2] ? JSON.parse(readFileSync(process.argv[2], 'utf8')) : {};
const host = cfg.host ?? '127.0.0.1';
const resource = cfg.resource ?? 'http://api.example.test';

// ---------------------------------------------------------------------------------------------
// Shared in-memory storage. Explicit (rather than oidc-provider's module-global LRU of 1000
// entries) so that (a) long test runs never evict sessions and (b) a Provider rebuilt by
// /__test/rotate sees the very same sessions, grants, codes and tokens.
const store = new Map();
const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);
const get = (key) => {
  const entry = store.get(key);
  if (entry && entry.exp && entry.exp < Date.now()) { store.delete(key); return undefined; }
  return entry?.value;
};
const put = (key, value, expiresIn) => store.set(key, {
  value, exp: expiresIn ? Date.now() + expiresIn * 1000 : 0,
});

class SharedAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    if (this.model === 'Session') put(`sessionUid:${payload.uid}`, id, expiresIn);
    if (grantable.has(this.model) && payload.grantId) {
      const list = get(`grant:${payload.grantId}`) ?? [];
      list.push(this.key(id));
      put(`grant:${payload.grantId}`, list);
    }
    if (payload.userCode) put(`userCode:${payload.userCode}`, id, expiresIn);
    put(this.key(id), payload, expiresIn);
  }

  async find(id) { return get(this.key(id)); }

  async findByUid(uid) { return this.find(get(`sessionUid:${uid}`)); }

  async findByUserCode(code) { return this.find(get(`userCode:${code}`)); }

  async consume(id) {
    const payload = get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { store.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    (get(`grant:${grantId}`) ?? []).forEach((key) => store.delete(key));
    store.delete(`grant:${grantId}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Signing keys, generated per run. The first key of each kty is the one used for signing, so the
// RSA key first makes RS256 (the clients' default id_token_signed_response_alg) use it.
async function newKey(alg, kid, options = {}) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true, ...options });
  return { ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' };
}
let keyCounter = 1;
const keys = [
  await newKey('RS256', `rs256-${keyCounter}`),
  await newKey('ES256', 'es256-1'),
  await newKey('EdDSA', 'eddsa-1', { crv: 'Ed25519' }),
];

// ---------------------------------------------------------------------------------------------
// Accounts: any login name is accepted (devInteractions never checks the password).
async function findAccount(ctx, id) {
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        email: `${id}@example.test`,
        email_verified: true,
        name: `${id.charAt(0).toUpperCase()}${id.slice(1)} Test`,
        preferred_username: id,
        groups: ['users', `${id}-group`],
      };
    },
  };
}

function configuration() {
  return {
    adapter: SharedAdapter,
    clients: cfg.clients ?? [],
    findAccount,
    jwks: { keys: structuredClone(keys) },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    // Put scope-requested claims (email, preferred_username, groups, ...) into the ID token too,
    // not only into the userinfo response (the OIDC default for response_type=code).
    conformIdTokenClaims: false,
    // S256 only, and required for every authorization request (not only for public clients).
    pkce: { methods: ['S256'], required: () => true },
    // Refresh tokens: the default issues one only when offline_access survives, i.e. when the
    // client may use refresh_token AND the request had prompt=consent (OIDC Core 11 — otherwise
    // oidc-provider silently drops offline_access). alwaysIssueRefreshToken relaxes the prompt
    // requirement (the token then expires with the OP session, like Keycloak's).
    ...(cfg.alwaysIssueRefreshToken && {
      issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    }),
    // Fixed keys so cookies stay valid across /__test/rotate (a new Provider instance); no Secure
    // flag is forced since ctx.secure is false over plain http. SameSite=Lax on the long-lived
    // session cookie too: the default SameSite=None without Secure is rejected by browsers (it
    // only works through the extra "_session.legacy" cookie oidc-provider sets as a fallback).
    cookies: {
      keys: ['authgate-test-cookie-key-1'],
      long: { signed: true, sameSite: 'lax' },
      short: { signed: true, sameSite: 'lax' },
    },
    ttl: { // explicit values (silences oidc-provider's "you SHOULD change" notices)
      AccessToken: cfg.accessTokenTtl ?? 3600,
      AuthorizationCode: 60,
      ClientCredentials: cfg.accessTokenTtl ?? 600,
      Grant: 14 * 24 * 3600,
      IdToken: cfg.idTokenTtl ?? 3600,
      Interaction: 3600,
      RefreshToken: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
    },
    features: {
      devInteractions: { enabled: cfg.devInteractions ?? true }, // built-in login/consent HTML
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: cfg.backchannelLogout ?? true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // With "defaultResource": true the configured resource is applied even when the client
        // does not send resource=... (so a gateway that never sends it still gets JWT ATs).
        defaultResource: async (ctx, client, oneOf) => oneOf ?? (cfg.defaultResource ? resource : undefined),
        // Let the token endpoint reuse the resource granted at /auth without resending it.
        useGrantedResource: async () => true,
        async getResourceServerInfo(ctx, indicator) {
          if (indicator !== resource) throw new errors.InvalidTarget();
          return {
            scope: 'api:read api:write',
            audience: resource,
            accessTokenTTL: cfg.accessTokenTtl ?? 3600,
            accessTokenFormat: cfg.accessTokenFormat ?? 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
const server = http.createServer();
await new Promise((resolve) => server.listen(cfg.port ?? 0, host, resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

function buildProvider() {
  const provider = new Provider(issuer, configuration());
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error',
    'introspection.error', 'revocation.error', 'userinfo.error', 'backchannel.error']) {
    provider.on(event, (ctx, err) => console.error(`[op] ${event}: ${err?.message ?? ctx?.message} ${err?.error_description ?? ''}`));
  }
  provider.on('backchannel.success', (ctx, client, accountId, sid) => console.error(`[op] backchannel logout sent to ${client.clientId} sub=${accountId} sid=${sid}`));
  return provider;
}
// oidc-provider fixes its keystore at construction: rotation swaps in a new Provider instance.
const first = buildProvider();
let handler = first.callback();

// Static clients are only validated when first used; fail fast on bad metadata instead.
for (const { client_id: id } of cfg.clients ?? []) {
  try {
    await first.Client.find(id);
  } catch (err) {
    console.error(`[op] invalid client ${id}: ${err.message} ${err.error_description ?? ''}`);
    process.exit(1);
  }
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

server.on('request', async (req, res) => {
  try {
    const path = req.url.split('?')[0];
    if (req.method === 'GET' && path === '/__test/health') return json(res, 200, { ok: true });
    if (req.method === 'POST' && path === '/__test/rotate') {
      keyCounter += 1;
      const kid = `rs256-${keyCounter}`;
      keys.unshift(await newKey('RS256', kid)); // new signing key first, old ones still published
      handler = buildProvider().callback();
      console.error(`[op] rotated signing key, new kid ${kid}`);
      return json(res, 200, { kid });
    }
    // The token values of one kind issued to one account (opaque token value = its id), so a
    // test can ask the provider's introspection about a token the gateway holds.
    if (req.method === 'GET' && path === '/__test/tokens') {
      const q = new URL(req.url, 'http://x').searchParams;
      const model = q.get('model') ?? 'RefreshToken';
      const ids = [...store.keys()]
        .filter((k) => k.startsWith(`${model}:`) && get(k)?.accountId === q.get('account'))
        .map((k) => k.slice(model.length + 1));
      return json(res, 200, { tokens: ids });
    }
    if (path.startsWith('/__test/')) return json(res, 404, { error: 'not_found' });
    return handler(req, res);
  } catch (err) {
    console.error('[op] test endpoint error', err);
    return json(res, 500, { error: String(err) });
  }
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
console.error(`[op] listening on ${issuer} with ${(cfg.clients ?? []).length} client(s)`);
process.stdout.write(`${JSON.stringify({ ready: true, port, issuer })}\n`);
