// Create a sandbox, stream a command's output as it comes, destroy it.
//
// A minimal hostagent client in TypeScript with @connectrpc/connect-node
// (Connect protocol over HTTP/2, mutual TLS). The schema is read at run time
// from a FileDescriptorSet, so no code generation is needed:
//
//   protoc -I proto --include_imports --descriptor_set_out=hostagent.binpb hostagent/v1/hostagent.proto
//   #   (or: buf build proto -o hostagent.binpb)
//   npm install && npx tsc
//   node dist/sandbox_exec.js --addr localhost:7443 --certs certs --descriptors hostagent.binpb \
//        -- sh -c 'for i in 1 2 3; do echo $i; sleep 1; done'
//
// Output bytes go to this process's stdout/stderr as each chunk arrives; the
// exit status is the command's (128+N when killed by signal N).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { createClient, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

// The shapes this example uses (protobuf-es field names are camelCase).
interface Sandbox { sandboxId: string; state: number; ip: string }
type ExecEvent = {
  event:
    | { case: "started"; value: { pid: number } }
    | { case: "stdout" | "stderr"; value: { data: Uint8Array } }
    | { case: "exited"; value: { exitCode: number; signal: number; timedOut: boolean } }
    | { case: undefined; value?: undefined };
};
interface HostAgentClient {
  createSandbox(req: object, opts?: object): Promise<Sandbox>;
  execStream(req: object, opts?: object): AsyncIterable<ExecEvent>;
  destroySandbox(req: object, opts?: object): Promise<object>;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      addr: { type: "string", default: "localhost:7443" },
      certs: { type: "string", default: "certs" },
      identity: { type: "string", default: "admin" },
      descriptors: { type: "string", default: "hostagent.binpb" },
      image: { type: "string", default: "base" },
      id: { type: "string", default: "" },
      timeout: { type: "string", default: "300" },
    },
  });
  if (positionals.length === 0) {
    console.error("usage: sandbox_exec [--addr H:P] [--certs DIR] [--descriptors FILE] -- COMMAND...");
    return 2;
  }
  const certs = values.certs!;
  const registry = createFileRegistry(
    fromBinary(FileDescriptorSetSchema, readFileSync(values.descriptors!)));
  const service = registry.getService("hostagent.v1.HostAgentService");
  if (!service) throw new Error(`hostagent.v1.HostAgentService not in ${values.descriptors}`);
  const transport = createConnectTransport({
    baseUrl: `https://${values.addr}`,
    httpVersion: "2",
    nodeOptions: {
      ca: readFileSync(join(certs, "ca.pem")),
      cert: readFileSync(join(certs, `${values.identity}.pem`)),
      key: readFileSync(join(certs, `${values.identity}.key`)),
    },
  });
  const client = createClient(service, transport) as unknown as HostAgentClient;

  const sandboxId = values.id || `ex-${randomUUID().slice(0, 12)}`;
  const sbx = await client.createSandbox(
    { sandboxId, image: values.image, timeoutSeconds: Number(values.timeout) }, { timeoutMs: 120000 });
  console.error(`# sandbox ${sbx.sandboxId} state=${sbx.state} ip=${sbx.ip}`);
  let status = 1;
  try {
    for await (const ev of client.execStream({ sandboxId, command: positionals })) {
      switch (ev.event.case) {
        case "stdout":
          process.stdout.write(ev.event.value.data);
          break;
        case "stderr":
          process.stderr.write(ev.event.value.data);
          break;
        case "started":
          console.error(`# started pid ${ev.event.value.pid}`);
          break;
        case "exited": {
          const x = ev.event.value;
          status = x.signal ? 128 + x.signal : x.exitCode;
          console.error(`# exited code=${x.exitCode} signal=${x.signal} timed_out=${x.timedOut}`);
          break;
        }
      }
    }
  } catch (e) {
    const ce = ConnectError.from(e);
    console.error(`# exec failed: ${ce.code} ${ce.rawMessage}`);
  } finally {
    // Always give the sandbox back; it would otherwise live until its TTL.
    await client.destroySandbox({ sandboxId }, { timeoutMs: 60000 });
    console.error(`# destroyed ${sandboxId}`);
  }
  return status;
}

main().then((code) => { process.exitCode = code; }, (e) => {
  console.error(`# failed: ${e instanceof Error ? e.message : e}`);
  process.exitCode = 1;
});
