// A small etcd writer process for benchmarks whose etcd is only reachable
// inside a network namespace: it is started there (`ip netns exec NS node
// etcd-writer.js ENDPOINT`) and takes one JSON request per line on stdin,
// answering one JSON line per request on stdout as soon as etcd acknowledged it:
//   {"id":1,"op":"put","key":K,"value":V}
//   {"id":2,"op":"batch","puts":[[K,V],…],"deletes":[K,…]}   (transactions of ≤ 128 operations)
//   {"id":3,"op":"deletePrefix","prefix":P}
//   → {"id":N,"ok":true} or {"id":N,"ok":false,"error":"…"}
// Requests are served one at a time, in order. The process ends when stdin closes.

import { createInterface } from 'node:readline';
import { Etcd3, type IRequestOp } from 'etcd3';

/** etcd's default --max-txn-ops. */
const TXN_OPS = 128;
const TXNS_IN_FLIGHT = 4;

interface Request {
  id: number;
  op: 'put' | 'batch' | 'deletePrefix';
  key?: string;
  value?: string;
  puts?: Array<[string, string]>;
  deletes?: string[];
  prefix?: string;
}

async function batch(client: Etcd3, req: Request): Promise<void> {
  const ops: IRequestOp[] = [
    ...(req.puts ?? []).map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })),
    ...(req.deletes ?? []).map((key) => ({ request_delete_range: { key: Buffer.from(key) } })),
  ];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ops.length) {
      const chunk = ops.slice(next, next + TXN_OPS);
      next += TXN_OPS;
      await client.kv.txn({ compare: [], success: chunk, failure: [] });
    }
  };
  await Promise.all(Array.from({ length: TXNS_IN_FLIGHT }, worker));
}

async function serve(client: Etcd3, req: Request): Promise<void> {
  switch (req.op) {
    case 'put':
      if (!req.key || req.value === undefined) throw new Error('put needs key and value');
      await client.put(req.key).value(req.value).exec();
      return;
    case 'batch':
      await batch(client, req);
      return;
    case 'deletePrefix':
      if (!req.prefix) throw new Error('deletePrefix needs a non-empty prefix');
      await client.delete().prefix(req.prefix).exec();
      return;
    default:
      throw new Error(`unknown op ${JSON.stringify((req as { op: unknown }).op)}`);
  }
}

async function main(): Promise<void> {
  const endpoint = process.argv[2];
  if (endpoint === undefined) throw new Error('usage: etcd-writer ENDPOINT');
  const client = new Etcd3({ hosts: endpoint });
  const lines = createInterface({ input: process.stdin });
  try {
    for await (const line of lines) {
      if (line.trim() === '') continue;
      const req = JSON.parse(line) as Request;
      try {
        await serve(client, req);
        process.stdout.write(`${JSON.stringify({ id: req.id, ok: true })}\n`);
      } catch (err) {
        process.stdout.write(`${JSON.stringify({ id: req.id, ok: false, error: (err as Error).message })}\n`);
      }
    }
  } finally {
    client.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`etcd-writer: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
