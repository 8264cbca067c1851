// @connectrpc/connect-node against hostagent-testd over mutual TLS, with the
// Connect transport (binary and JSON) and the gRPC-Web transport. The schema
// comes from a FileDescriptorSet (protoc output), so no code generation.
//   node connect_suite.mjs TLS_PORT CERT_DIR DESCRIPTOR_SET
// Prints one line per check and "ALL OK"; exits 1 on the first failure.
import fs from 'node:fs';
import path from 'node:path';
import { createClient, Code, ConnectError } from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport, compressionGzip } from '@connectrpc/connect-node';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

const [port, certs, descPath] = process.argv.slice(2);
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, fs.readFileSync(descPath)));
const TestService = registry.getService('hostagent.test.v1.TestService');
const HostAgent = registry.getService('hostagent.v1.HostAgentService');
const nodeOptions = {
  ca: fs.readFileSync(path.join(certs, 'ca.pem')),
  cert: fs.readFileSync(path.join(certs, 'admin.pem')),
  key: fs.readFileSync(path.join(certs, 'admin.key')),
};
const baseUrl = `https://localhost:${port}`;

function check(name, cond, detail) {
  if (!cond) { console.log(`FAIL ${name}: ${detail ?? ''}`); process.exit(1); }
  console.log(`ok ${name}`);
}

async function suite(label, transport, { clientStreaming }) {
  const client = createClient(TestService, transport);
  const r = await client.echo({ message: 'héllo', payload: new Uint8Array([0, 1, 255]) });
  check(`${label} unary`, r.message === 'héllo' && r.payload.length === 3 && r.payload[2] === 255);

  const big = new Uint8Array(200000).fill(7);
  const rb = await client.echo({ payload: big });
  check(`${label} 200 kB message (gzip offered both ways)`, rb.payload.length === big.length);

  let headers, trailers;
  await client.echo({ message: 'md', echoMetadata: true }, {
    headers: { 'x-token': 'abc', 'x-raw-bin': 'AAEC' },
    onHeader: (h) => { headers = h; }, onTrailer: (t) => { trailers = t; },
  });
  check(`${label} metadata in headers and trailers`, headers.get('x-token') === 'abc' && trailers.get('x-token') === 'abc',
    `${[...headers]} / ${[...trailers]}`);

  try {
    await client.echo({ failCode: 6, failMessage: 'sandbox "a" exists' });
    check(`${label} error`, false, 'no error');
  } catch (e) {
    const ce = ConnectError.from(e);
    check(`${label} error code and message`, ce.code === Code.AlreadyExists && ce.rawMessage === 'sandbox "a" exists',
      `${ce.code} ${ce.rawMessage}`);
    const EchoResponse = registry.getMessage('hostagent.test.v1.EchoResponse');
    const found = ce.findDetails(EchoResponse);
    check(`${label} error details`, found.length === 1 && found[0].message === 'sandbox "a" exists' && found[0].seq === 6,
      JSON.stringify(ce.details));
  }

  try {
    await client.sleep({ sleepMs: 5000 }, { timeoutMs: 200 });
    check(`${label} deadline`, false, 'no error');
  } catch (e) {
    check(`${label} deadline exceeded`, ConnectError.from(e).code === Code.DeadlineExceeded, ConnectError.from(e).code);
  }

  const seqs = [];
  for await (const m of client.serverStream({ count: 2000, size: 32 })) seqs.push(m.seq);
  check(`${label} server stream in order`, seqs.length === 2000 && seqs.every((v, i) => v === i), seqs.length);

  if (clientStreaming) {
    async function* reqs() { for (let i = 0; i < 100; i++) yield { payload: new Uint8Array(10) }; }
    const cs = await client.clientStream(reqs());
    check(`${label} client stream`, cs.count === 100 && Number(cs.bytes) === 1000, `${cs.count} ${cs.bytes}`);
    const got = [];
    async function* bidiReqs() { for (let i = 0; i < 20; i++) yield { message: `b${i}` }; }
    for await (const m of client.bidi(bidiReqs())) got.push(m.message);
    check(`${label} bidi`, got.length === 20 && got.every((v, i) => v === `b${i}`), got.length);
  }

  const api = createClient(HostAgent, transport);
  const info = await api.getHostInfo({});
  check(`${label} GetHostInfo`, info.version.length > 0 && info.uptime !== undefined);
  try {
    await api.getSandbox({ sandboxId: 'Bad_ID!' });
    check(`${label} api error`, false, 'no error');
  } catch (e) {
    const ce = ConnectError.from(e);
    check(`${label} api error has a code`, ce.code !== Code.Unknown && ce.rawMessage.length > 0, `${ce.code} ${ce.rawMessage}`);
  }
}

const common = { baseUrl, httpVersion: '2', nodeOptions, sendCompression: compressionGzip,
  acceptCompression: [compressionGzip], compressMinBytes: 1024 };
await suite('connect+proto', createConnectTransport({ ...common, useBinaryFormat: true }), { clientStreaming: true });
await suite('connect+json', createConnectTransport({ ...common, useBinaryFormat: false }), { clientStreaming: true });
await suite('connect GET', createConnectTransport({ ...common, useBinaryFormat: true, useHttpGet: true }), { clientStreaming: false });
await suite('grpc-web', createGrpcWebTransport({ ...common, useBinaryFormat: true }), { clientStreaming: false });
console.log('ALL OK');
