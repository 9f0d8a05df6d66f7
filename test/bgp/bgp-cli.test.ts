// trellisctl bgp plan (offline: JSON shape, the limit, bad nodes files) and
// trellisctl bgp status against an endpoint that does not answer.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/command.js';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), readFile: (p) => readFile(p, 'utf8') };
  return { code: await main(argv, io), stdout, stderr };
}

const TOPOLOGY = 'examples/vpc-plan/topology.yaml';
const NODES = 'examples/bgp-plan/nodes.json';

t.test('plan -o json: the limit is kept, one aggregate per subnet at 3', async (t) => {
  const r = await run(['bgp', 'plan', '--topology', TOPOLOGY, '--nodes', NODES, '--max-prefixes', '3', '-o', 'json']);
  t.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { routes: Array<{ prefix: string; nextHops: string[]; subnet: string }>; used: number; maxPrefixes: number };
  t.equal(doc.routes.length, 3);
  t.equal(doc.used, 3);
  t.equal(doc.maxPrefixes, 3);
  t.same(doc.routes.map((r) => r.subnet), ['subnet-0a', 'subnet-0b', 'subnet-0c']);
  t.ok(doc.routes.every((r) => r.nextHops.length === 1 && r.nextHops[0]!.startsWith('198.18.')));
});

t.test('plan --multipath lists the other owners under an aggregate', async (t) => {
  const r = await run(['bgp', 'plan', '--topology', TOPOLOGY, '--nodes', NODES, '--max-prefixes', '3', '--multipath', '4', '-o', 'json']);
  const doc = JSON.parse(r.stdout) as { routes: Array<{ nextHops: string[] }> };
  t.ok(doc.routes.every((x) => x.nextHops.length === 4), 'four owners under each /22');
});

t.test('bad nodes files and options are refused, naming hostIP', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bgp-cli-'));
  const file = join(dir, 'nodes.json');
  writeFileSync(
    file,
    JSON.stringify([
      { name: 'a', subnet: 'subnet-0a', hostIP: 'nope', blocks: ['100.96.0.0/26'] },
      { name: 'b', subnet: 'subnet-0a', instanceId: 'i-1', blocks: ['100.96.1.0/26'] },
      { name: 'c', subnet: 'subnet-0a', blocks: ['100.96.2.0/26'] },
    ]),
  );
  const r = await run(['bgp', 'plan', '--topology', TOPOLOGY, '--nodes', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, /\[0\]\.hostIP: "nope" is not an IP address/);
  t.match(r.stderr, /\[1\]\.instanceId: unknown key \(bgp plan takes "hostIP"\)/);
  t.match(r.stderr, /\[2\]\.hostIP: missing/);
  const usage = await run(['bgp', 'plan', '--topology', TOPOLOGY, '--nodes', NODES, '--max-prefixes', '0']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--max-prefixes must be a whole number ≥ 1/);
});

t.test('status: an endpoint that does not answer is an error', async (t) => {
  const r = await run(['bgp', 'status', '--endpoint', '127.0.0.1:1']);
  t.equal(r.code, 1);
  t.match(r.stderr, /cannot read http:\/\/127\.0\.0\.1:1\/bgp/);
});
