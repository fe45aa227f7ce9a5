// The "legacy app" behind authgate: echoes every request back as JSON, and WebSocket messages too.
// Usage: node upstream.mjs [port]   (0 or nothing = ephemeral), listens on 127.0.0.1.
// stdout: exactly one line, {"ready":true,"port":N}; logs go to stderr.
import * as http from 'node:http';

import { WebSocketServer } from 'ws';

console.log = console.info = (...args) => console.error(...args);

// {lowercased name: value}, repeated headers joined with ", " (Node would drop repeated
// singleton headers such as Authorization, and joins Set-Cookie into an array, so build it from
// rawHeaders ourselves).
function headerMap(rawHeaders) {
  const out = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    out[name] = name in out ? `${out[name]}, ${rawHeaders[i + 1]}` : rawHeaders[i + 1];
  }
  return out;
}
const rawPairs = (rawHeaders) => rawHeaders.flatMap((v, i) => (i % 2 ? [] : [[v, rawHeaders[i + 1]]]));
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const headers = headerMap(req.rawHeaders);
    if (req.method === 'GET' && req.url.split('?')[0] === '/' && (headers.accept ?? '').includes('text/html')) {
      const rows = Object.entries(headers).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('\n');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>Legacy app</title></head><body>
<h1>Hello ${esc(headers['x-forwarded-user'] ?? 'anonymous')}</h1>
<p>Request headers as received by the upstream:</p><table border="1">
${rows}
</table></body></html>`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      method: req.method,
      url: req.url,
      headers,
      rawHeaders: rawPairs(req.rawHeaders),
      body: Buffer.concat(chunks).toString('utf8'),
    }));
  });
});

// WebSocket on any path: first a JSON message with the upgrade request, then echo "echo:<msg>".
const wss = new WebSocketServer({ server });
wss.on('connection', (ws, req) => {
  ws.send(JSON.stringify({ url: req.url, headers: headerMap(req.rawHeaders), rawHeaders: rawPairs(req.rawHeaders) }));
  ws.on('message', (data, isBinary) => {
    ws.send(isBinary ? Buffer.concat([Buffer.from('echo:'), data]) : `echo:${data.toString()}`, { binary: isBinary });
  });
});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  console.error(`[upstream] listening on http://127.0.0.1:${port}`);
  process.stdout.write(`${JSON.stringify({ ready: true, port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
