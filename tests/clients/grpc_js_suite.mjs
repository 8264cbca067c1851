// @grpc/grpc-js against hostagent-testd over mutual TLS. Usage:
//   node grpc_js_suite.mjs TLS_PORT CERT_DIR
// Prints one line per check and "ALL OK" at the end; exits 1 on a failure.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const [port, certs] = process.argv.slice(2);
const def = protoLoader.loadSync('hostagent/test/v1/test.proto', {
  includeDirs: [path.join(here, '../../proto')], longs: String, defaults: true,
});
const pkg = grpc.loadPackageDefinition(def).hostagent.test.v1;
const creds = grpc.credentials.createSsl(
  fs.readFileSync(path.join(certs, 'ca.pem')),
  fs.readFileSync(path.join(certs, 'admin.key')),
  fs.readFileSync(path.join(certs, 'admin.pem')));
const client = new pkg.TestService(`localhost:${port}`, creds, {
  'grpc.default_compression_algorithm': 2, 'grpc.max_receive_message_length': 16 << 20,
});

function check(name, cond, detail) {
  if (!cond) { console.log(`FAIL ${name}: ${detail ?? ''}`); process.exit(1); }
  console.log(`ok ${name}`);
}
const unary = (m, req, opts = {}) => new Promise((resolve) => {
  const md = opts.md ?? new grpc.Metadata();
  const call = client[m](req, md, { deadline: opts.deadline }, (err, res) => resolve({ err, res, call }));
  call.on('metadata', (h) => { call.headers = h; });
  call.on('status', (s) => { call.trailers = s.metadata; });
});

const r1 = await unary('Echo', { message: 'hello' });
check('unary echo', !r1.err && r1.res.message === 'hello', r1.err);

const md = new grpc.Metadata();
md.set('x-key', 'v1');
md.set('x-data-bin', Buffer.from([0, 1, 2, 255]));
const r2 = await unary('Echo', { message: 'md', echoMetadata: true }, { md });
await new Promise((r) => setTimeout(r, 50));
check('metadata echo', !r2.err && r2.call.headers.get('x-key')[0] === 'v1'
  && Buffer.compare(r2.call.headers.get('x-data-bin')[0], Buffer.from([0, 1, 2, 255])) === 0
  && r2.call.trailers.get('x-key')[0] === 'v1', JSON.stringify(r2.call.headers?.toJSON()));

const r3 = await unary('Sleep', { sleepMs: 5000 }, { deadline: Date.now() + 200 });
check('deadline exceeded', r3.err && r3.err.code === grpc.status.DEADLINE_EXCEEDED, r3.err?.code);

const r4 = await unary('Echo', { failCode: 5, failMessage: 'no such thing' });
check('error code and message', r4.err && r4.err.code === 5 && r4.err.details === 'no such thing', r4.err?.details);

const big = Buffer.alloc(300000, 97);
const r5 = await unary('Echo', { payload: big });
check('gzip round trip of 300 kB', !r5.err && Buffer.compare(r5.res.payload, big) === 0, r5.err);

const seqs = await new Promise((resolve, reject) => {
  const out = [];
  const s = client.ServerStream({ count: 10000, size: 8 });
  s.on('data', (m) => out.push(m.seq));
  s.on('end', () => resolve(out));
  s.on('error', reject);
});
check('10000 streamed messages in order', seqs.length === 10000 && seqs.every((v, i) => v === i), seqs.length);

const bidi = await new Promise((resolve, reject) => {
  const out = [];
  const s = client.Bidi();
  s.on('data', (m) => { out.push(m.message); if (out.length < 50) s.write({ message: `m${out.length}` }); else s.end(); });
  s.on('end', () => resolve(out));
  s.on('error', reject);
  s.write({ message: 'm0' });
});
check('bidi ping-pong', bidi.length === 50 && bidi.every((v, i) => v === `m${i}`), bidi.length);

const cs = await new Promise((resolve) => {
  const s = client.ClientStream((err, res) => resolve({ err, res }));
  s.write({ payload: Buffer.alloc((4 << 20) + 1) });
  s.end();
});
check('message over the limit', cs.err && cs.err.code === grpc.status.RESOURCE_EXHAUSTED, cs.err?.code);

const many = await Promise.all([...Array(100).keys()].map((i) => unary('Echo', { message: `${i}` })));
check('100 concurrent calls', many.every((r, i) => !r.err && r.res.message === `${i}`));

client.close();
console.log('ALL OK');
