// trellisctl vpc plan (offline: JSON shape, table output, every kind of bad
// input) and trellisctl vpc status (against a real etcd).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/command.js';
import { parsePrefix } from '../../src/core/cidr.js';
import { Keys } from '../../src/state/keys.js';
import { makeStatus, writeStatus } from '../../src/state/vpc-status.js';
import { startEtcd } from '../../lab/etcd.js';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), readFile: (p) => readFile(p, 'utf8') };
  return { code: await main(argv, io), stdout, stderr };
}

const TOPOLOGY = `network: 100.96.0.0/16
blockSize: 26
subnetSize: 20
zones:
  - name: zone-1
    subnets:
      - { id: subnet-1, cidr: 198.18.1.0/24, routeTable: rtb-1 }
  - name: zone-2
    subnets:
      - { id: subnet-2, cidr: 198.18.2.0/24, routeTable: rtb-2 }
  - name: zone-3
    subnets:
      - { id: subnet-3, cidr: 198.18.3.0/24, routeTable: rtb-3 }
`;

/** 3 subnets × 4 nodes, one /26 each in its own /24 home. */
function nodes(): Array<Record<string, unknown>> {
  return [1, 2, 3].flatMap((s) =>
    [0, 1, 2, 3].map((j) => ({ name: `h${s}-${j}`, subnet: `subnet-${s}`, instanceId: `i-0${s}${j}`, blocks: [`100.96.${(s - 1) * 16 + j}.0/26`] })),
  );
}

t.test('trellisctl vpc plan', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-vpc-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const topo = file('topology.yaml', TOPOLOGY);
  const good = file('nodes.json', JSON.stringify(nodes()));
  const plan = (nodesFile: string, ...more: string[]) => run(['vpc', 'plan', '--topology', topo, '--nodes', nodesFile, ...more]);

  await t.test('-o json: exactly the documented shape; one entry per node at the default limit (500)', async (t) => {
    const r = await plan(good, '-o', 'json');
    t.equal(r.code, 0);
    t.equal(r.stderr, '');
    const out = JSON.parse(r.stdout) as { routes: Array<Record<string, unknown>>; extraHopShare: number };
    t.same(Object.keys(out).slice(0, 2), ['routes', 'extraHopShare'], 'routes, then extraHopShare');
    t.equal(out.extraHopShare, 0, 'no extra hop');
    t.equal(out.routes.length, 36, '12 nodes × 3 tables');
    for (const route of out.routes) t.same(Object.keys(route), ['table', 'destination', 'target', 'node', 'subnet']);
    const first = out.routes[0];
    t.same(first, { table: 'rtb-1', destination: '100.96.0.0/26', target: 'i-010', node: 'h1-0', subnet: 'subnet-1' });
    for (const n of nodes()) {
      const mine = out.routes.filter((x) => x.node === n.name);
      t.same(mine.map((x) => [x.table, x.destination, x.target]), ['rtb-1', 'rtb-2', 'rtb-3'].map((tb) => [tb, (n.blocks as string[])[0], n.instanceId]), `${n.name}: its own entry in every table`);
    }
  });

  await t.test('"draining" in the nodes file: a drained node forwards for nobody, or keeps its entries alone in its subnet', async (t) => {
    const list = nodes().map((n) => (n.name === 'h1-0' ? { ...n, draining: true } : n));
    const r = await plan(file('drained.json', JSON.stringify(list)), '-o', 'json');
    t.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { routes: Array<Record<string, unknown>>; drainKept: unknown[] };
    t.notOk(out.routes.some((x) => x.node === 'h1-0'), 'no entry targets h1-0');
    t.ok(out.routes.filter((x) => x.destination === '100.96.0.0/26').every((x) => x.subnet === 'subnet-1' && x.node !== 'h1-0'), "h1-0's block goes to another host of subnet-1");
    t.same(out.drainKept, []);
    const lone = nodes().map((n) => (n.subnet === 'subnet-1' ? { ...n, healthy: n.name === 'h1-0', draining: n.name === 'h1-0' } : n));
    const kept = await plan(file('lone.json', JSON.stringify(lone)));
    t.match(kept.stdout, /\nwarning: subnet subnet-1 has no healthy host that is not draining: h1-0 keeps forwarding/, 'kept, with a warning');
    const bad = await plan(file('bad-drain.json', JSON.stringify([{ ...nodes()[0], draining: 'yes' }])));
    t.equal(bad.code, 1);
    t.match(bad.stderr, /\[0\]\.draining: must be true or false, got "yes"/);
  });

  await t.test('limit 8, reserved 2: aggregated, spread, with the extra-hop share', async (t) => {
    const r = await plan(good, '--limit', '8', '--reserved', '2', '-o', 'json');
    t.equal(r.code, 0);
    const out = JSON.parse(r.stdout) as { routes: Array<{ table: string; destination: string; target: string; subnet: string }>; extraHopShare: number };
    for (const table of ['rtb-1', 'rtb-2', 'rtb-3']) {
      const list = out.routes.filter((x) => x.table === table);
      t.equal(list.length, 6, `${table}: 6 entries (8 − 2)`);
      for (const s of ['subnet-1', 'subnet-2', 'subnet-3']) {
        const targets = list.filter((x) => x.subnet === s).map((x) => x.target);
        t.equal(new Set(targets).size, 2, `${table}: ${s} on two distinct forwarders`);
      }
    }
    t.equal(out.extraHopShare, 0.5, 'half of the claimed addresses take an extra hop');
    const starved = await plan(good, '--limit', '4', '--reserved', '2', '-o', 'json');
    const s = JSON.parse(starved.stdout) as { budgetExceeded: boolean; uncovered: Array<{ subnet: string; reason: string }> };
    t.equal(s.budgetExceeded, true, 'budget 2 for 3 subnets: exceeded');
    t.ok(s.uncovered.some((u) => u.subnet === 'subnet-3' && u.reason === 'over-budget'), 'the last subnet goes without');
  });

  await t.test('table output', async (t) => {
    const r = await plan(good, '--limit', '8', '--reserved', '2');
    t.equal(r.code, 0);
    const lines = r.stdout.trimEnd().split('\n');
    t.match(lines[0], /^TABLE\s+DESTINATION\s+TARGET\s+NODE\s+SUBNET$/);
    t.match(lines[1], /^rtb-1\s+100\.96\.0\.0\/23\s+i-010\s+h1-0\s+subnet-1$/);
    t.ok(lines.includes('18 entries in 3 route tables (limit 8, reserved 2: 6 per table); extra hop: 50.0% of claimed addresses'));
    t.ok(lines.includes('  rtb-1: 6 of 6 used (subnet-1 2, subnet-2 2, subnet-3 2)'));
    const starved = await plan(good, '--limit', '3', '--reserved', '1');
    t.match(starved.stdout, /^warning: route table rtb-1 has room for 2 of the 3 subnets needing entries$/m, 'a budget that cannot cover every subnet is said loudly');
  });

  await t.test('"main" when the topology names no route table; healthy defaults to true', async (t) => {
    const plain = file('plain.yaml', TOPOLOGY.replace(/, routeTable: rtb-\d/g, ''));
    const list = nodes().filter((n) => n.subnet === 'subnet-1');
    (list[0] as Record<string, unknown>).healthy = false;
    const r = await run(['vpc', 'plan', '--topology', plain, '--nodes', file('main.json', JSON.stringify(list)), '--limit', '3', '-o', 'json']);
    t.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { routes: Array<{ table: string; target: string }> };
    t.ok(out.routes.length > 0 && out.routes.every((x) => x.table === 'main'), 'every entry in "main"');
    t.notOk(out.routes.some((x) => x.target === 'i-010'), 'the unhealthy node forwards nothing');
  });

  await t.test('bad input: exit 1 with a message naming the problem', async (t) => {
    const base = nodes();
    const cases: Array<[string, string, RegExp]> = [
      ['missing nodes file', join(dir, 'nope.json'), /nope\.json: cannot read the nodes file: no such file/],
      ['bad JSON', file('bad.json', '[{"name": "a",'), /bad\.json: not valid JSON: /],
      ['not an array', file('obj.json', '{"name": "a"}'), /must be a JSON array of nodes/],
      ['not an object', file('num.json', '[1]'), /\[0\]: must be an object/],
      ['unknown subnet', file('sub.json', JSON.stringify([{ ...base[0], subnet: 'subnet-9' }])), /\[0\]\.subnet: unknown subnet "subnet-9" \(the topology has subnet-1, subnet-2, subnet-3\)/],
      ['block outside its subnet', file('out.json', JSON.stringify([{ ...base[0], blocks: ['100.96.16.0/26'] }])), /\[0\]\.blocks\[0\]: 100\.96\.16\.0\/26 is outside the pod prefix 100\.96\.0\.0\/20 of subnet subnet-1/],
      ['duplicate node', file('dupn.json', JSON.stringify([base[0], { ...base[1], name: 'h1-0' }])), /\[1\]\.name: duplicate node name "h1-0" \(first used by \[0\]\)/],
      ['duplicate block', file('dupb.json', JSON.stringify([base[0], { ...base[1], blocks: ['100.96.0.0/26'] }])), /\[1\]\.blocks\[0\]: 100\.96\.0\.0\/26: duplicate block of node h1-0 \(\[0\]\.blocks\[0\]\)/],
      ['overlapping block', file('ovl.json', JSON.stringify([base[0], { ...base[1], blocks: ['100.96.0.0/24'] }])), /overlaps 100\.96\.0\.0\/26 of node h1-0/],
      ['duplicate instance id', file('dupi.json', JSON.stringify([base[0], { ...base[1], instanceId: 'i-010' }])), /\[1\]\.instanceId: duplicate instance id "i-010"/],
      ['not a CIDR', file('cidr.json', JSON.stringify([{ ...base[0], blocks: ['100.96.0.0/33'] }])), /\[0\]\.blocks\[0\]: /],
      ['not canonical', file('canon.json', JSON.stringify([{ ...base[0], blocks: ['100.96.0.1/26'] }])), /did you mean 100\.96\.0\.0\/26\?/],
      ['missing key', file('miss.json', JSON.stringify([{ name: 'a', subnet: 'subnet-1', blocks: [] }])), /\[0\]\.instanceId: missing/],
      ['unknown key', file('key.json', JSON.stringify([{ ...base[0], instance_id: 'x' }])), /\[0\]\.instance_id: unknown key "instance_id" \(did you mean "instanceId"\?\)/],
      ['healthy not a boolean', file('hl.json', JSON.stringify([{ ...base[0], healthy: 'yes' }])), /\[0\]\.healthy: must be true or false/],
      ['blocks not an array', file('bl.json', JSON.stringify([{ ...base[0], blocks: '100.96.0.0/26' }])), /\[0\]\.blocks: must be an array of CIDR strings/],
    ];
    for (const [what, nodesFile, message] of cases) {
      const r = await plan(nodesFile);
      t.equal(r.code, 1, `${what}: exit 1`);
      t.match(r.stderr, message, `${what}: ${r.stderr.trim().split('\n')[0]}`);
      t.equal(r.stdout, '', `${what}: nothing on stdout`);
    }
    const two = await plan(file('two.json', JSON.stringify([{ ...base[0], subnet: 'x' }, { ...base[1], healthy: 1 }])));
    t.equal(two.stderr.trim().split('\n').length, 2, 'every problem is reported, one per line');
    const noTopo = await run(['vpc', 'plan', '--topology', join(dir, 'none.yaml'), '--nodes', good]);
    t.equal(noTopo.code, 1);
    t.match(noTopo.stderr, /none\.yaml: cannot read the topology file: no such file/);
    const badTopo = await run(['vpc', 'plan', '--topology', file('bad.yaml', 'network: 100.96.0.1/16\nzones: []\n'), '--nodes', good]);
    t.equal(badTopo.code, 1);
    t.match(badTopo.stderr, /bad\.yaml: network: /);
  });

  await t.test('usage errors exit 2; --help exits 0', async (t) => {
    t.equal((await run(['vpc', 'plan', '--nodes', good])).code, 2, 'no --topology');
    const lim = await plan(good, '--limit', 'many');
    t.equal(lim.code, 2);
    t.match(lim.stderr, /--limit must be a whole number ≥ 1, got "many"/);
    const over = await plan(good, '--limit', '1001');
    t.equal(over.code, 2);
    t.match(over.stderr, /--limit must be at most 1000, got 1001 \(AWS allows at most 1000 routes per route table\)/);
    t.equal((await plan(good, '--limit', '1000')).code, 0, 'the AWS maximum is accepted');
    t.equal((await plan(good, '-o', 'xml')).code, 2, 'bad -o');
    for (const cmd of [['vpc', 'plan', '--help'], ['vpc', 'status', '--help'], ['vpc', '--help']]) {
      const h = await run(cmd);
      t.equal(h.code, 0, `${cmd.join(' ')}`);
      t.match(h.stdout, /^Usage: trellisctl vpc/);
    }
  });
});

t.test('trellisctl vpc status', async (t) => {
  const etcd = await startEtcd(t);
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const keys = new Keys();
  const e = ['--etcd', etcd.endpoint];

  const empty = await run(['vpc', 'status', ...e]);
  t.equal(empty.code, 0);
  t.match(empty.stdout, /no VPC advertiser status in etcd/);

  const entry = { table: 'rtb-1', destination: parsePrefix('100.96.0.0/23'), target: 'i-010', node: 'h1-0', subnet: 'subnet-1' };
  await writeStatus(
    client,
    keys,
    makeStatus(
      {
        subnet: 'subnet-1',
        leader: 'h1-3',
        plan: [entry],
        applied: [entry],
        forwarders: [
          { node: 'h1-0', instanceId: 'i-010', healthy: true, consecutiveMisses: 0, changedAt: 0 },
          { node: 'h1-1', instanceId: 'i-011', healthy: false, consecutiveMisses: 3, changedAt: Date.parse('2026-01-02T03:04:05Z') },
        ],
        lastError: 'CreateRoute failed: RouteLimitExceeded',
        budgetExceeded: true,
        extraHopShare: 0.25,
        warnings: ['route table rtb-1 has room for 2 of the 3 subnets needing entries'],
      },
      Date.parse('2026-01-02T03:04:06Z'),
    ),
  );
  const lease = String((await client.leaseClient.leaseGrant({ TTL: 30 })).ID);
  await client.put(`${keys.advertisersPrefix('subnet-1')}aa`).value('h1-3').lease(lease).exec();
  await client.put(`${keys.advertisersPrefix('subnet-1')}bb`).value('h1-0').lease(lease).exec();
  await client.put(`${keys.advertisersPrefix('subnet-2')}cc`).value('h2-0').lease(lease).exec();

  const json = await run(['vpc', 'status', '-o', 'json', ...e]);
  t.equal(json.code, 0, json.stderr);
  const list = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
  t.same(list.map((s) => s.subnet), ['subnet-1', 'subnet-2']);
  t.match(list[0], {
    subnet: 'subnet-1',
    leader: 'h1-3',
    electedLeader: 'h1-3',
    candidates: 2,
    updatedAt: '2026-01-02T03:04:06.000Z',
    entries: [{ table: 'rtb-1', destination: '100.96.0.0/23', target: 'i-010', node: 'h1-0' }],
    forwarders: [{ node: 'h1-0', healthy: true }, { node: 'h1-1', healthy: false, consecutiveMisses: 3, changedAt: '2026-01-02T03:04:05.000Z' }],
    lastError: 'CreateRoute failed: RouteLimitExceeded',
    budgetExceeded: true,
    extraHopShare: 0.25,
  });
  t.match(list[1], { subnet: 'subnet-2', electedLeader: 'h2-0', problem: 'no status written yet' });

  const table = await run(['vpc', 'status', ...e]);
  t.equal(table.code, 0);
  const lines = table.stdout.split('\n');
  t.match(lines[0], /^SUBNET\s+LEADER\s+ELECTED\s+CANDIDATES\s+ENTRIES\s+FORWARDERS\s+EXTRA HOP\s+UPDATED\s+LAST ERROR$/);
  t.match(lines[1], /^subnet-1\s+h1-3\s+h1-3\s+2\s+1\s+1\/2 healthy\s+25\.0%\s+2026-01-02T03:04:06\.000Z\s+CreateRoute failed: RouteLimitExceeded$/);
  t.match(lines[2], /^subnet-2\s+-\s+h2-0\s+1\s+0\s+0\/0 healthy .*no status written yet$/);
  t.match(table.stdout, /^subnet-1\s+rtb-1\s+100\.96\.0\.0\/23\s+i-010\s+h1-0$/m, 'entries listed');
  t.match(table.stdout, /^subnet-1\s+h1-1\s+i-011\s+failed\s+3\s+2026-01-02T03:04:05\.000Z$/m, 'forwarder health listed');
  t.match(table.stdout, /^warning: subnet-1: the route-table budget cannot give every subnet an entry$/m);
  await client.leaseClient.leaseRevoke({ ID: lease });
});
