import t from 'tap';
import { parsePrefix } from '../../src/core/cidr.js';
import { Ipam, type IpamOptions } from '../../src/core/ipam.js';
import { placeNode } from '../../src/core/ipam-placement.js';
import type { BlockRecord } from '../../src/core/ipam-store.js';
import { MemoryIpamStore, type StoreHook, type StoreOperation } from '../../src/core/memory-store.js';
import type { Subnet, Topology } from '../../src/core/topology.js';
import { ErrorCode } from '../../src/errors.js';

const P = parsePrefix;

function subnet(id: string, cidr: string, pod: string): Subnet {
  return { id, zone: 'z1', cidr: P(cidr), podPrefix: P(pod), podPrefixExplicit: true, routeTable: undefined };
}

function topology(blockSize: number, nodeHomeSize: number, subnets: Subnet[]): Topology {
  return { network: P('100.64.0.0/16'), blockSize, nodeHomeSize, subnetSize: 24, zones: [{ name: 'z1', subnets }] };
}

class Clock {
  now = 1_000_000;
  readonly read = (): number => this.now;
}

interface Fixture {
  store: MemoryIpamStore;
  clock: Clock;
  ipam: (node: string, extra?: Partial<IpamOptions>) => Ipam;
}

function fixture(topo: Topology, sub: Subnet, hook?: StoreHook): Fixture {
  const store = new MemoryIpamStore(hook === undefined ? {} : { hook });
  const clock = new Clock();
  return { store, clock, ipam: (node, extra = {}) => new Ipam({ topology: topo, store, claims: store, node, subnet: sub, clock: clock.read, ...extra }) };
}

const pod = (id: string): { containerId: string; ifName: string } => ({ containerId: id, ifName: 'eth0' });
const block = (store: MemoryIpamStore, prefix: string): BlockRecord | undefined => store.snapshot().find((b) => b.prefix === prefix);

// A /28 pod prefix made of four /30 blocks (4 addresses each), one home.
const tiny = subnet('subnet-tiny', '198.18.0.0/24', '100.64.0.0/28');
const tinyTopo = topology(30, 28, [tiny]);
// A single-block subnet: the /26 block is the whole pod prefix.
const one = subnet('subnet-one', '198.18.1.0/24', '100.64.1.0/26');
const oneTopo = topology(26, 26, [one]);

t.test('placeNode finds the subnet by id or by host IP, strictly', async (t) => {
  const a = subnet('subnet-a', '198.18.0.0/24', '100.64.0.0/24');
  const b = subnet('subnet-b', '198.18.1.0/24', '100.64.1.0/24');
  const topo = topology(26, 24, [a, b]);
  t.equal(placeNode(topo, { name: 'n1', hostIP: '198.18.1.7' }), b, 'by host IP');
  t.equal(placeNode(topo, { name: 'n1', hostIP: '198.18.0.7', subnet: 'subnet-a' }), a, 'by id');
  t.equal(placeNode(topo, { name: 'n1', hostIP: { family: 4, addr: 0xc6120001n } }), a, 'by parsed address');
  const bad: Array<[Parameters<typeof placeNode>[1], { code: string; message: RegExp }]> = [
    [{ name: 'n1', hostIP: '198.18.0.7', subnet: 'subnet-x' }, { code: ErrorCode.NotFound, message: /n1.*subnet-x is not in the topology/ }],
    [{ name: 'n1', hostIP: '198.18.1.7', subnet: 'subnet-a' }, { code: ErrorCode.Config, message: /198\.18\.1\.7 is not inside subnet subnet-a \(198\.18\.0\.0\/24\)/ }],
    [{ name: 'n1', hostIP: '198.19.0.1' }, { code: ErrorCode.NotFound, message: /no subnet .* contains host IP 198\.19\.0\.1/ }],
    [{ name: 'n1', hostIP: 'not-an-ip' }, { code: ErrorCode.Config, message: /"not-an-ip" is not an IP address/ }],
  ];
  for (const [node, want] of bad) t.throws(() => placeNode(topo, node), want, JSON.stringify(node));
});

t.test('all 64 addresses of a /26 block are usable, first and last included', async (t) => {
  const { ipam } = fixture(oneTopo, one);
  const n = ipam('n1');
  const got: string[] = [];
  for (let i = 0; i < 64; i++) got.push((await n.allocate(pod(`c${i}`))).address);
  t.same(got, Array.from({ length: 64 }, (_, i) => `100.64.1.${i}`));
  await t.rejects(n.allocate(pod('c64')), { code: ErrorCode.Exhausted, message: /subnet subnet-one \(pod prefix 100\.64\.1\.0\/26\)/ });
});

t.test('allocate returns the address, its length and block; IPv6 gets /128', async (t) => {
  const { ipam, store } = fixture(oneTopo, one);
  t.same(await ipam('n1').allocate({ ...pod('c1'), netns: '/var/run/netns/x', podNamespace: 'ns', podName: 'p', network: 'trellis' }), {
    address: '100.64.1.0',
    prefixLength: 32,
    block: '100.64.1.0/26',
  });
  t.same(block(store, '100.64.1.0/26')?.allocations['100.64.1.0'], {
    containerId: 'c1',
    ifName: 'eth0',
    netns: '/var/run/netns/x',
    podNamespace: 'ns',
    podName: 'p',
    network: 'trellis',
    allocatedAt: 1_000_000,
  });
  const s6 = subnet('subnet-6', '198.18.2.0/24', 'fd00:64::/120');
  const f6 = fixture({ ...oneTopo, network: P('fd00:64::/112'), blockSize: 122, nodeHomeSize: 120 }, s6);
  t.same(await f6.ipam('n6').allocate(pod('c1')), { address: 'fd00:64::', prefixLength: 128, block: 'fd00:64::/122' });
  t.same(await f6.ipam('n6').allocate(pod('c2')), { address: 'fd00:64::1', prefixLength: 128, block: 'fd00:64::/122' });
});

t.test('allocate is idempotent per (containerId, ifName), also when calls overlap', async (t) => {
  const { ipam } = fixture(tinyTopo, tiny);
  const n = ipam('n1');
  const first = await n.allocate(pod('c1'));
  t.same(await n.allocate(pod('c1')), first, 'repeated call');
  t.not((await n.allocate({ containerId: 'c1', ifName: 'eth1' })).address, first.address, 'another interface');
  const same = await Promise.all([n.allocate(pod('c2')), n.allocate(pod('c2')), n.allocate(pod('c2'))]);
  t.equal(new Set(same.map((r) => r.address)).size, 1, 'overlapping calls agree');
  t.equal((await n.listAllocations()).length, 3);
});

t.test('overlapping allocations on one node never share an address', async (t) => {
  const { ipam } = fixture(tinyTopo, tiny, async () => {
    await new Promise<void>((resolve) => setImmediate(resolve));
  });
  const n = ipam('n1');
  const got = await Promise.all(Array.from({ length: 16 }, (_, i) => n.allocate(pod(`c${i}`))));
  t.equal(new Set(got.map((r) => r.address)).size, 16);
  await t.rejects(n.allocate(pod('c16')), { code: ErrorCode.Exhausted });
});

t.test('released addresses are reused least recently freed first, after resting', async (t) => {
  const { ipam, clock } = fixture(oneTopo, one);
  const n = ipam('n1', { addressRestMs: 30_000 });
  for (let i = 0; i < 64; i++) await n.allocate(pod(`c${i}`));
  const order = ['c7', 'c3', 'c63', 'c0'];
  for (const c of order) {
    await n.release(c, 'eth0');
    clock.now += 1000;
  }
  // Nothing has rested, and there is no block to claim: the least recently freed comes back.
  t.equal((await n.allocate(pod('x0'))).address, '100.64.1.7', 'unrested fallback is LRF');
  clock.now += 30_000;
  const reused = [];
  for (const c of ['x1', 'x2', 'x3']) reused.push((await n.allocate(pod(c))).address);
  t.same(reused, ['100.64.1.3', '100.64.1.63', '100.64.1.0'], 'LRF order');
  const listed = await n.listAllocations();
  t.same(listed.map((a) => a.address), Array.from({ length: 64 }, (_, i) => `100.64.1.${i}`), 'listed in address order');
  t.same(listed[0], {
    address: '100.64.1.0',
    prefixLength: 32,
    block: '100.64.1.0/26',
    allocation: { containerId: 'x3', ifName: 'eth0', allocatedAt: clock.now },
  });
});

t.test('a resting address is not reused while a block can be claimed', async (t) => {
  const { ipam, clock, store } = fixture(tinyTopo, tiny);
  const n = ipam('n1', { addressRestMs: 30_000 });
  for (let i = 0; i < 4; i++) await n.allocate(pod(`c${i}`));
  t.equal(await n.release('c1', 'eth0'), '100.64.0.1');
  clock.now += 29_999;
  t.same(await n.allocate(pod('d0')), { address: '100.64.0.4', prefixLength: 32, block: '100.64.0.4/30' }, 'claims a block instead');
  t.same(block(store, '100.64.0.4/30')?.emptySince, undefined, 'a block claimed for a pod is never empty');
  for (let i = 1; i < 4; i++) await n.allocate(pod(`d${i}`));
  clock.now += 1;
  t.equal((await n.allocate(pod('d4'))).address, '100.64.0.1', 'rested: reused before claiming');
  t.same(Object.keys(block(store, '100.64.0.0/30')?.released ?? {}), [], 'no longer released');
});

t.test('releasing an unknown pair is not an error; releasing twice returns undefined', async (t) => {
  const { ipam, store } = fixture(tinyTopo, tiny);
  const n = ipam('n1');
  t.equal(await n.release('nope', 'eth0'), undefined);
  await n.allocate(pod('c1'));
  await n.allocate(pod('c2'));
  t.equal(await n.release('c1', 'eth0'), '100.64.0.0');
  t.equal(block(store, '100.64.0.0/30')?.emptySince, undefined, 'not empty yet');
  t.equal(await n.release('c1', 'eth0'), undefined);
  t.equal(await n.release('c2', 'eth1'), undefined, 'ifName matters');
  t.equal(await n.release('c2', 'eth0'), '100.64.0.1');
  t.same(block(store, '100.64.0.0/30')?.released, { '100.64.0.0': 1_000_000, '100.64.0.1': 1_000_000 });
  t.equal(block(store, '100.64.0.0/30')?.emptySince, 1_000_000, 'empty since the last release');
  await n.allocate(pod('c3'));
  t.equal(block(store, '100.64.0.0/30')?.emptySince, undefined, 'cleared on allocation');
});

t.test('empty blocks go back after the grace period, best aggregation first, one kept', async (t) => {
  const s = subnet('subnet-g', '198.18.0.0/24', '100.64.0.0/26');
  const { ipam, clock, store } = fixture(topology(28, 26, [s]), s);
  const announced: string[] = [];
  const n = ipam('n1', {
    blockGraceMs: 600_000,
    // the caller withdraws a block from its advertisement before it is deleted
    beforeRelease: async (prefix: string) => {
      t.ok(block(store, prefix), `${prefix} still claimed when beforeRelease runs`);
      announced.push(prefix);
    },
  });
  for (let i = 0; i < 4; i++) await n.claimBlock();
  t.same(await n.listBlocks(), ['100.64.0.0/28', '100.64.0.16/28', '100.64.0.32/28', '100.64.0.48/28']);
  const c = await n.allocate(pod('c1'));
  t.equal(c.block, '100.64.0.0/28');
  // Move the pod into the second block so the first three blocks are empty around it.
  await n.release('c1', 'eth0');
  // Written by another process of the node: this allocator finds it when its release is refused.
  const cur = (await store.getClaim('100.64.0.16/28'))!;
  const c2 = { containerId: 'c2', ifName: 'eth0', allocatedAt: clock.now };
  t.ok(await store.createAddress({ address: '100.64.0.16', block: '100.64.0.16/28', node: 'n1', allocation: c2 }, cur.version));
  clock.now += 599_999;
  t.same(await n.releaseEmptyBlocks(), [], 'grace not over');
  clock.now += 1;
  t.same(await n.releaseEmptyBlocks(), ['100.64.0.48/28', '100.64.0.32/28', '100.64.0.0/28'], 'best remaining aggregation first');
  t.same(announced, ['100.64.0.48/28', '100.64.0.32/28', '100.64.0.0/28'], 'beforeRelease ran for each, in order');
  t.same(await n.listBlocks(), ['100.64.0.16/28']);
  await n.release('c2', 'eth0');
  clock.now += 600_000;
  t.same(await n.releaseEmptyBlocks(), [], 'the last block stays');
  t.same(await n.ensureBlock(), ['100.64.0.16/28'], 'ensureBlock keeps what is there');
});

t.test('when all blocks are empty the one kept is the lowest of the best aggregation', async (t) => {
  const s = subnet('subnet-g', '198.18.0.0/24', '100.64.0.0/26');
  const { ipam, clock } = fixture(topology(28, 26, [s]), s);
  const n = ipam('n1', { blockGraceMs: 10 });
  for (let i = 0; i < 4; i++) await n.claimBlock();
  clock.now += 10;
  t.same(await n.releaseEmptyBlocks(), ['100.64.0.48/28', '100.64.0.32/28', '100.64.0.16/28']);
  t.same(await n.listBlocks(), ['100.64.0.0/28']);
});

t.test('the block whose removal keeps the rest aggregated goes first, wherever it lies', async (t) => {
  const s = subnet('subnet-g', '198.18.0.0/24', '100.64.0.0/26');
  const rec = (prefix: string, busy: boolean): BlockRecord => ({
    prefix,
    subnet: s.id,
    node: 'n1',
    claimedAt: 0,
    allocations: busy ? { [prefix.replace('/28', '')]: { containerId: prefix, ifName: 'eth0', allocatedAt: 0 } } : {},
    released: {},
    ...(busy ? {} : { emptySince: 0 }),
  });
  const cases: Array<[BlockRecord[], string[]]> = [
    [[rec('100.64.0.16/28', false), rec('100.64.0.32/28', false), rec('100.64.0.48/28', true)], ['100.64.0.16/28', '100.64.0.32/28']],
    [[rec('100.64.0.0/28', false), rec('100.64.0.16/28', true), rec('100.64.0.32/28', false)], ['100.64.0.32/28', '100.64.0.0/28']],
  ];
  for (const [blocks, want] of cases) {
    const store = new MemoryIpamStore({ blocks });
    const n = new Ipam({ topology: topology(28, 26, [s]), store, claims: store, node: 'n1', subnet: s, clock: () => 0, blockGraceMs: 0 });
    t.same(await n.releaseEmptyBlocks(), want);
  }
});

t.test('ensureBlock claims once; claimBlock fails with Exhausted naming the subnet', async (t) => {
  const { ipam } = fixture(tinyTopo, tiny);
  const a = ipam('a');
  t.same(await a.ensureBlock(), ['100.64.0.0/30']);
  t.same(await a.ensureBlock(), ['100.64.0.0/30'], 'idempotent');
  const b = ipam('b');
  t.same(await b.ensureBlock(), ['100.64.0.4/30'], 'crowded: lowest free block');
  t.equal(await b.claimBlock(), '100.64.0.8/30');
  t.equal(await a.claimBlock(), '100.64.0.12/30');
  await t.rejects(b.claimBlock(), { code: ErrorCode.Exhausted, message: /subnet-tiny/ });
  await t.rejects(ipam('c').ensureBlock(), { code: ErrorCode.Exhausted, message: /subnet-tiny.*node c/ });
});

t.test('releaseNode deletes every claim of the node and its blocks become reusable', async (t) => {
  const { ipam, store } = fixture(tinyTopo, tiny);
  const a = ipam('a');
  const b = ipam('b');
  await a.allocate(pod('a1'));
  await b.allocate(pod('b1'));
  await a.claimBlock();
  t.same(await a.releaseNode(), ['100.64.0.0/30', '100.64.0.8/30']);
  t.same(await a.listAllocations(), []);
  t.same(store.snapshot().map((r) => r.node), ['b']);
  t.same(await ipam('c').ensureBlock(), ['100.64.0.0/30'], 'a freed block is claimed again');
});

t.test('a lost compare-and-swap is retried on a fresh view', async (t) => {
  const ops: string[] = [];
  let lose = 1;
  const { ipam, store } = fixture(tinyTopo, tiny, (op) => {
    ops.push(op);
    if (op === 'createAddress' && lose > 0) {
      lose--;
      return 'lose';
    }
    return undefined;
  });
  const n = ipam('n1');
  await n.allocate(pod('c1'));
  ops.length = 0;
  t.equal((await n.allocate(pod('c2'))).address, '100.64.0.1');
  t.same(
    ops,
    ['createAddress', 'claims', 'getClaim', 'listAddresses', 'createAddress'],
    'the node re-reads its claims and its addresses after the lost write, then writes one record',
  );
  t.same(Object.keys(block(store, '100.64.0.0/30')?.allocations ?? {}), ['100.64.0.0', '100.64.0.1']);
});

t.test('a real concurrent writer moves the version: the loser recomputes', async (t) => {
  let interfere = true;
  const f = fixture(tinyTopo, tiny, async (op) => {
    if (op === 'createClaim' && interfere) {
      interfere = false;
      // Another node claims the very block this create is about to claim.
      await f.ipam('other').ensureBlock();
    }
  });
  t.same(await f.ipam('n1').ensureBlock(), ['100.64.0.4/30']);
  t.same(
    f.store.snapshot().map((r) => [r.prefix, r.node]),
    [
      ['100.64.0.0/30', 'other'],
      ['100.64.0.4/30', 'n1'],
    ],
  );
});

t.test('too many lost races end in ErrorCode.Conflict', async (t) => {
  const held: BlockRecord = { prefix: '100.64.0.0/30', subnet: tiny.id, node: 'n1', claimedAt: 0, allocations: {}, released: {} };
  const cases: Array<{ op: StoreOperation; blocks: BlockRecord[]; run: (n: Ipam) => Promise<unknown>; message: RegExp }> = [
    { op: 'createAddress', blocks: [held], run: (n) => n.allocate(pod('c1')), message: /node n1: could not allocate an address: lost 4 compare-and-swap races/ },
    { op: 'createClaim', blocks: [], run: (n) => n.ensureBlock(), message: /could not ensure a block/ },
    { op: 'releaseBlock', blocks: [held], run: (n) => n.releaseNode(), message: /could not release the node/ },
  ];
  for (const c of cases) {
    let attempts = 0;
    const hook: StoreHook = (o) => (o === c.op && ++attempts > 0 ? 'lose' : undefined);
    const store = new MemoryIpamStore({ hook, blocks: c.blocks });
    const n = new Ipam({ topology: tinyTopo, store, claims: store, node: 'n1', subnet: tiny, clock: () => 0, maxRetries: 3 });
    await t.rejects(c.run(n), { code: ErrorCode.Conflict, message: c.message }, c.op);
    t.equal(attempts, 4, `${c.op}: 1 + maxRetries attempts`);
  }
});

t.test('calls after a failed call still run (the queue survives errors)', async (t) => {
  const { ipam } = fixture(oneTopo, one);
  const n = ipam('n1', { maxRetries: 0 });
  for (let i = 0; i < 64; i++) await n.allocate(pod(`c${i}`));
  const failed = n.allocate(pod('x'));
  const released = n.release('c5', 'eth0');
  await t.rejects(failed, { code: ErrorCode.Exhausted });
  t.equal(await released, '100.64.1.5');
});

t.test('options and topology are checked up front', async (t) => {
  const store = new MemoryIpamStore();
  const base = { topology: tinyTopo, store, claims: store, node: 'n1', subnet: tiny, clock: () => 0 };
  t.throws(() => new Ipam({ ...base, addressRestMs: -1 }), { code: ErrorCode.Config, message: /addressRestMs/ });
  t.throws(() => new Ipam({ ...base, blockGraceMs: Number.NaN }), { code: ErrorCode.Config, message: /blockGraceMs/ });
  t.throws(() => new Ipam({ ...base, topology: { ...tinyTopo, blockSize: 27 } }), { code: ErrorCode.Topology });
});

t.test('records of other subnets and unreadable records are left alone', async (t) => {
  const s1 = subnet('subnet-a', '198.18.0.0/24', '100.64.0.0/28');
  const s2 = subnet('subnet-b', '198.18.1.0/24', '100.64.0.16/28');
  const topo = topology(30, 28, [s1, s2]);
  const store = new MemoryIpamStore({
    blocks: [
      { prefix: 'garbage', subnet: 'x', node: 'n1', claimedAt: 0, allocations: {}, released: {} },
      // The node's block in its previous subnet, with one pod still on it and a key that is not an address.
      {
        prefix: '100.64.0.16/30',
        subnet: 'subnet-b',
        node: 'n1',
        claimedAt: 0,
        allocations: { '100.64.0.17': { containerId: 'old', ifName: 'eth0', allocatedAt: 0 } },
        released: { bogus: 0, '100.64.0.99': 0 },
      },
      { prefix: '100.64.0.20/30', subnet: 'subnet-b', node: 'n1', claimedAt: 0, allocations: {}, released: {}, emptySince: 0 },
    ],
  });
  const clock = new Clock();
  const n = new Ipam({ topology: topo, store, claims: store, node: 'n1', subnet: s1, clock: clock.read, blockGraceMs: 0 });
  t.same(await n.allocate(pod('new')), { address: '100.64.0.0', prefixLength: 32, block: '100.64.0.0/30' });
  t.same(
    (await n.listAllocations()).map((a) => [a.address, a.allocation.containerId]),
    [
      ['100.64.0.0', 'new'],
      ['100.64.0.17', 'old'],
    ],
  );
  t.same(await n.allocate(pod('old')), { address: '100.64.0.17', prefixLength: 32, block: '100.64.0.16/30' }, 'found anywhere');
  t.same(await n.releaseEmptyBlocks(), ['100.64.0.20/30'], 'an idle block outside the subnet goes back');
  t.equal(await n.release('old', 'eth0'), '100.64.0.17');
  t.same(await n.releaseEmptyBlocks(), ['100.64.0.16/30']);
  t.same(await n.listBlocks(), ['100.64.0.0/30']);
  t.same(await n.releaseNode(), ['100.64.0.0/30'], 'garbage is not the node’s to delete');
  t.same(store.snapshot().map((r) => r.prefix), ['garbage']);
});

t.test('every write path recovers from one lost compare-and-swap', async (t) => {
  const s = subnet('subnet-g', '198.18.0.0/24', '100.64.0.0/26');
  const other = subnet('subnet-o', '198.18.1.0/24', '100.64.1.0/26');
  const topo = topology(28, 26, [s, other]);
  const busy: BlockRecord = {
    prefix: '100.64.0.32/28',
    subnet: s.id,
    node: 'n1',
    claimedAt: 0,
    allocations: { '100.64.0.32': { containerId: 'c1', ifName: 'eth0', allocatedAt: 0 } },
    released: {},
  };
  // Empty without emptySince (written by someone else): empty since its claim.
  const idle: BlockRecord = { prefix: '100.64.0.48/28', subnet: s.id, node: 'n1', claimedAt: 0, allocations: {}, released: {} };
  const foreign: BlockRecord = { prefix: '100.64.1.0/28', subnet: other.id, node: 'n1', claimedAt: 0, allocations: {}, released: {}, emptySince: 0 };
  const cases: Array<{ name: string; op: StoreOperation; blocks: BlockRecord[]; run: (n: Ipam) => Promise<unknown>; want: unknown }> = [
    { name: 'allocate claiming a block', op: 'createClaim', blocks: [], run: (n) => n.allocate(pod('new')), want: { address: '100.64.0.0', prefixLength: 32, block: '100.64.0.0/28' } },
    { name: 'allocate in a block', op: 'createAddress', blocks: [busy], run: (n) => n.allocate(pod('new')), want: { address: '100.64.0.33', prefixLength: 32, block: '100.64.0.32/28' } },
    { name: 'release', op: 'updateAddress', blocks: [busy, idle], run: (n) => n.release('c1', 'eth0'), want: '100.64.0.32' },
    { name: 'releaseEmptyBlocks, other subnet first', op: 'releaseBlock', blocks: [busy, idle, foreign], run: (n) => n.releaseEmptyBlocks(), want: ['100.64.1.0/28', '100.64.0.48/28'] },
    { name: 'releaseEmptyBlocks, own subnet', op: 'releaseBlock', blocks: [busy, idle], run: (n) => n.releaseEmptyBlocks(), want: ['100.64.0.48/28'] },
    { name: 'releaseNode', op: 'releaseBlock', blocks: [busy, idle, foreign], run: (n) => n.releaseNode(), want: ['100.64.0.32/28', '100.64.0.48/28', '100.64.1.0/28'] },
  ];
  for (const c of cases) {
    let lost = 0;
    const hook: StoreHook = (op) => (op === c.op && lost++ === 0 ? 'lose' : undefined);
    const store = new MemoryIpamStore({ hook, blocks: c.blocks });
    const n = new Ipam({ topology: topo, store, claims: store, node: 'n1', subnet: s, clock: () => 600_000 });
    t.same(await c.run(n), c.want, c.name);
    t.ok(lost > 1, `${c.name}: a write was lost and retried`);
  }
});

t.test("addresses of this host's pods in blocks taken from the node: those blocks are never claimed again here", async (t) => {
  const control = fixture(tinyTopo, tiny);
  t.same(await control.ipam('a').ensureBlock(), ['100.64.0.0/30'], 'unguarded, the first block of the home is chosen');

  // The node's records were collected while two pods kept 100.64.0.1 and 100.64.0.9.
  const f = fixture(tinyTopo, tiny);
  const ipam = f.ipam('a');
  t.same(
    await ipam.guardLocalAddresses(['100.64.0.9', '100.64.0.1', '100.64.0.2', '198.18.0.5', 'not-an-address']),
    ['100.64.0.0/30', '100.64.0.8/30'],
    'the blocks of the addresses it has no record of, inside the pod network, sorted',
  );
  t.same(await ipam.ensureBlock(), ['100.64.0.4/30'], 'a block none of them is in');
  const got = await ipam.allocate(pod('c1'));
  t.equal(got.block, '100.64.0.4/30', 'and addresses from it');

  // An address the node holds a record of is its own: nothing to guard.
  t.same(await ipam.guardLocalAddresses([got.address]), [], 'its own pod');
});
