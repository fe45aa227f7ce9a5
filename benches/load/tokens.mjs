// Prepare the inputs of the load benchmark (run from tests/support so its node_modules resolve):
//   node tokens.mjs keys <dir>                 → <dir>/rs256.pem (public) and <dir>/rs256.key
//   node tokens.mjs mint <dir> <iss> <n> <file> → n distinct RS256 JWTs, one per line
//   node tokens.mjs login <gateway-url> <user>  → prints "<cookie-name>=<value>" of a session
// Tokens: iss as given, aud "api", sub "load-user", 1 h lifetime, a jti making each distinct.
import { generateKeyPairSync, createPrivateKey, sign, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

const [, , cmd, ...args] = process.argv;
const b64 = (v) => Buffer.from(v).toString('base64url');

if (cmd === 'keys') {
  const [dir] = args;
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(`${dir}/rs256.pem`, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(`${dir}/rs256.key`, privateKey.export({ type: 'pkcs8', format: 'pem' }));
} else if (cmd === 'mint') {
  const [dir, iss, n, file] = args;
  const key = createPrivateKey(readFileSync(`${dir}/rs256.key`));
  const header = b64(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const now = Math.floor(Date.now() / 1000);
  const lines = [];
  for (let i = 0; i < Number(n); i += 1) {
    const payload = b64(JSON.stringify({
      iss, aud: 'api', sub: 'load-user', email: 'load@example.test', iat: now, exp: now + 3600,
      scope: 'read', jti: randomUUID(),
    }));
    const sig = sign('RSA-SHA256', Buffer.from(`${header}.${payload}`), key);
    lines.push(`${header}.${payload}.${b64(sig)}`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
} else if (cmd === 'login') {
  // Walk the authorization-code flow like a browser: redirects by hand, cookies by name.
  const [gateway, user] = args;
  const jar = new Map();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const remember = (res) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (!value || attrs.some((a) => /max-age=0/i.test(a))) jar.delete(name); else jar.set(name, value);
    }
  };
  let url = `${gateway}/`;
  let init = { headers: { accept: 'text/html' } };
  for (let hop = 0; hop < 20; hop += 1) {
    const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...init.headers, cookie: cookieHeader() } });
    remember(res);
    if (url.startsWith(`${gateway}/oauth2/callback`)) {
      const session = [...jar].find(([k]) => k === '_authgate');
      if (!session) throw new Error(`no session cookie after the callback (${res.status})`);
      console.log(`${session[0]}=${session[1]}`);
      process.exit(0);
    }
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).toString();
      init = { headers: { accept: 'text/html' } };
      continue;
    }
    const html = await res.text();
    const action = /<form[^>]*action="([^"]*)"/i.exec(html)?.[1];
    if (!action) throw new Error(`no form at ${url} (${res.status})`);
    const fields = new URLSearchParams();
    for (const [tag] of html.matchAll(/<input[^>]*>/gi)) {
      const name = /\bname="([^"]+)"/i.exec(tag)?.[1];
      const value = /\bvalue="([^"]*)"/i.exec(tag)?.[1] ?? '';
      if (name) fields.set(name, name === 'login' ? user : name === 'password' ? 'x' : value);
    }
    url = new URL(action, url).toString();
    init = { method: 'POST', body: fields.toString(), headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' } };
  }
  throw new Error('the login never came back to the gateway');
} else {
  console.error('usage: tokens.mjs keys <dir> | mint <dir> <iss> <n> <file> | login <gateway> <user>');
  process.exit(2);
}
