// A deliberately misbehaving minimal OpenID Provider, for negative tests of authgate's ID token
// validation. Plain node:http + jose; every authorization request is approved at once.
// Usage: node rogue-op.mjs [port]   (0 or nothing = ephemeral), listens on 127.0.0.1.
// stdout: exactly one line, {"ready":true,"port":N,"issuer":"http://127.0.0.1:N"}; logs on stderr.
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';

import * as jose from 'jose';

console.log = console.info = (...args) => console.error(...args);

const KINDS = new Set(['ok', 'wrong_key', 'unknown_kid', 'expired', 'wrong_aud', 'wrong_iss',
  'wrong_nonce', 'no_nonce', 'bad_at_hash', 'future_iat', 'alg_none', 'multi_aud_no_azp',
  'hs256_with_public_key']);
let scenario = 'ok';

const keyA = await jose.generateKeyPair('RS256', { extractable: true }); // published, kid "a"
const keyB = await jose.generateKeyPair('RS256', { extractable: true }); // never published
const publicJwkA = { ...(await jose.exportJWK(keyA.publicKey)), kid: 'a', alg: 'RS256', use: 'sig' };
const publicPemA = await jose.exportSPKI(keyA.publicKey);

const codes = new Map(); // code -> { clientId, nonce, codeChallenge, redirectUri, used }
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const random = () => b64url(randomBytes(24));
const leftHalfSha256 = (s) => b64url(createHash('sha256').update(s).digest().subarray(0, 16));

async function idToken(issuer, clientId, nonce, accessToken) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer, sub: 'rogue-user', aud: clientId, iat: now, exp: now + 300, nonce,
    at_hash: leftHalfSha256(accessToken), sid: 'rogue-sid',
  };
  let key = keyA.privateKey;
  let header = { alg: 'RS256', kid: 'a', typ: 'JWT' };
  switch (scenario) {
    case 'wrong_key': key = keyB.privateKey; break; // still claims kid "a"
    case 'unknown_kid': key = keyB.privateKey; header.kid = 'b'; break;
    case 'expired': claims.iat = now - 7200; claims.exp = now - 3600; break;
    case 'wrong_aud': claims.aud = 'someone-else'; break;
    case 'wrong_iss': claims.iss = 'http://evil.example.test'; break;
    case 'wrong_nonce': claims.nonce = 'not-the-nonce-you-sent'; break;
    case 'no_nonce': delete claims.nonce; break;
    case 'bad_at_hash': claims.at_hash = leftHalfSha256(`${accessToken}-tampered`); break;
    case 'future_iat': claims.iat = now + 3600; claims.exp = now + 3900; break;
    case 'multi_aud_no_azp': claims.aud = [clientId, 'other']; break;
    case 'alg_none': // unsecured JWS: "header.payload." with an empty signature
      return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.`;
    case 'hs256_with_public_key': // the classic RS256->HS256 key-confusion attack
      key = new TextEncoder().encode(publicPemA);
      header = { alg: 'HS256', kid: 'a', typ: 'JWT' };
      break;
    default: break;
  }
  if (claims.nonce === undefined) delete claims.nonce;
  return new jose.SignJWT(claims).setProtectedHeader(header).sign(key);
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    try {
      const issuer = `http://127.0.0.1:${server.address().port}`;
      const url = new URL(req.url, issuer);
      const body = Buffer.concat(chunks).toString('utf8');
      const route = `${req.method} ${url.pathname}`;
      console.error(`[rogue-op] ${route} (scenario ${scenario})`);
      switch (route) {
        case 'GET /__test/health': return send(res, 200, { ok: true, scenario });
        case 'GET /.well-known/openid-configuration': return send(res, 200, {
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          userinfo_endpoint: `${issuer}/userinfo`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        });
        case 'GET /jwks': return send(res, 200, { keys: [publicJwkA] });
        // Sign arbitrary claims with the published key A (kid "a" unless the header says
        // otherwise): forged-but-validly-signed logout tokens for negative tests.
        case 'POST /__test/sign': {
          const { header = {}, claims } = JSON.parse(body || '{}');
          const token = await new jose.SignJWT(claims)
            .setProtectedHeader({ alg: 'RS256', kid: 'a', ...header })
            .sign(keyA.privateKey);
          return send(res, 200, { token });
        }
        case 'POST /__scenario': {
          const { kind } = JSON.parse(body || '{}');
          if (!KINDS.has(kind)) return send(res, 400, { error: `unknown kind ${kind}`, kinds: [...KINDS] });
          scenario = kind;
          return send(res, 200, { kind });
        }
        case 'GET /authorize': {
          const p = url.searchParams;
          const redirectUri = p.get('redirect_uri');
          if (!redirectUri) return send(res, 400, { error: 'invalid_request', error_description: 'redirect_uri missing' });
          const code = random();
          codes.set(code, {
            clientId: p.get('client_id'), nonce: p.get('nonce') ?? undefined,
            codeChallenge: p.get('code_challenge'), redirectUri, used: false,
          });
          const target = new URL(redirectUri);
          target.searchParams.set('code', code);
          if (p.has('state')) target.searchParams.set('state', p.get('state'));
          res.writeHead(302, { location: target.href });
          return res.end();
        }
        case 'POST /token': {
          const p = new URLSearchParams(body);
          const entry = codes.get(p.get('code'));
          if (p.get('grant_type') !== 'authorization_code' || !entry || entry.used) {
            return send(res, 400, { error: 'invalid_grant', error_description: 'unknown or already redeemed code' });
          }
          entry.used = true; // single use: a replayed code gets invalid_grant
          const verifier = p.get('code_verifier');
          if (entry.codeChallenge && (!verifier
            || b64url(createHash('sha256').update(verifier).digest()) !== entry.codeChallenge)) {
            return send(res, 400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
          }
          // client authentication is not checked (basic or post both fine); take client_id from either
          const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
          const clientId = entry.clientId ?? p.get('client_id')
            ?? (basic && decodeURIComponent(Buffer.from(basic[1], 'base64').toString().split(':')[0]));
          const accessToken = random();
          return send(res, 200, {
            access_token: accessToken, token_type: 'Bearer', expires_in: 300,
            id_token: await idToken(issuer, clientId, entry.nonce, accessToken),
          });
        }
        case 'GET /userinfo': return send(res, 200, { sub: 'rogue-user' });
        default: return send(res, 404, { error: 'not_found' });
      }
    } catch (err) {
      console.error('[rogue-op] error', err);
      return send(res, 500, { error: 'server_error', error_description: String(err) });
    }
  });
});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  console.error(`[rogue-op] listening on http://127.0.0.1:${port}`);
  process.stdout.write(`${JSON.stringify({ ready: true, port, issuer: `http://127.0.0.1:${port}` })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
