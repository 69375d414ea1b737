// A Node ws client as a peer of tio's WebSocket codec: it connects with
// ws's default permessage-deflate offer ("permessage-deflate;
// client_max_window_bits"), sends text and binary messages, compressed
// (ws compresses what reaches its 1024-byte threshold) and not, checks
// that each comes back unchanged, and prints the extension the server
// answered. Usage: node peer.js URL [CAFILE]; with a wss:// URL, CAFILE is
// the PEM certificate of the authority to trust (Node's own roots are not
// used then). Exit status 0: every echo matched.
'use strict';

const fs = require('fs');
const WebSocket = require('ws');

const url = process.argv[2];
if (!url) {
  console.error('usage: node peer.js ws://HOST:PORT/ | wss://HOST:PORT/ CAFILE');
  process.exit(2);
}
const options = { perMessageDeflate: true };
if (process.argv[3]) options.ca = fs.readFileSync(process.argv[3]);

// text(n): n bytes of UTF-8 with one-, two- and four-byte characters that
// repeat (it compresses, so later messages can refer to earlier ones).
function text(n) {
  const unit = Buffer.from('añ😀z lorem ipsum, dolor sit amet. ');
  const b = Buffer.alloc(n, 'x');
  for (let i = 0; i + unit.length <= n; i += unit.length) unit.copy(b, i);
  return b.toString('utf8');
}

function binary(n, seed) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = i % 3 === 0 ? x & 0xff : 7; // compressible, not trivially
  }
  return b;
}

const messages = [];
for (const n of [0, 10, 1023, 1024, 5000, 70000, 300000]) {
  messages.push(text(n));
  messages.push(binary(n, n + 1));
}
messages.push(text(5000)); // again: with context takeover, it refers back

const ws = new WebSocket(url, options);
const timer = setTimeout(() => fail('timed out'), 20000);

function fail(why) {
  console.error('node peer: ' + why);
  process.exit(1);
}

let i = 0;
let answer = '';
ws.on('upgrade', (res) => { answer = res.headers['sec-websocket-extensions'] || ''; });
ws.on('open', () => {
  const sock = ws._socket;
  if (sock && typeof sock.getProtocol === 'function') console.log('tls: ' + sock.getProtocol());
  console.log('extensions: ' + answer);
  console.log('negotiated: ' + (ws.extensions || 'none'));
  ws.send(messages[0]);
});
ws.on('message', (data, isBinary) => {
  const want = messages[i];
  const wantBinary = Buffer.isBuffer(want);
  if (isBinary !== wantBinary) fail(`message ${i}: binary ${isBinary}, want ${wantBinary}`);
  const got = isBinary ? data : data.toString('utf8');
  const same = wantBinary ? Buffer.compare(got, want) === 0 : got === want;
  if (!same) fail(`message ${i}: ${got.length} bytes differ from the ${want.length} sent`);
  i++;
  if (i < messages.length) {
    ws.send(messages[i]);
    return;
  }
  console.log(`echoed: ${i} messages`);
  ws.close(1000, 'done');
});
ws.on('close', (code) => {
  clearTimeout(timer);
  if (i < messages.length) fail(`closed with ${code} after ${i} messages`);
  process.exit(0);
});
ws.on('error', (err) => fail(String(err)));
