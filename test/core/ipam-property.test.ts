// Property tests of the IPAM allocator on random topologies and random
// sequences of node joins and removals, allocations, releases, block claims,
// time advances and empty-block reclaims, run one step at a time (with lost
// compare-and-swaps injected) and as concurrent batches on one store whose
// operations fc.scheduler() interleaves. See the t.test names for what is
// asserted after every step or batch.
import t from 'tap';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { aggregate, contains, formatPrefix, maxLen, parseAddress, parsePrefix, size, split, supernet, type Prefix } from '../../src/core/cidr.js';
import { Ipam } from '../../src/core/ipam.js';
import { chooseBlock, type ClaimedBlock } from '../../src/core/ipam-choose.js';
import { placeNode } from '../../src/core/ipam-placement.js';
import type { AddressRecord, BlockRecord, ClaimRecord } from '../../src/core/ipam-store.js';
import { MemoryIpamStore, WRITE_OPERATIONS, type StoreHook } from '../../src/core/memory-store.js';
import { homeSizeIn, type Subnet, type Topology } from '../../src/core/topology.js';
import { ErrorCode, hasCode } from '../../src/errors.js';

const RUNS = 1000;
const NODES = 5;

/** Rest and grace periods of a run: the defaults, or short ones so that reuse and reclaim happen often. */
interface Timing {
  readonly rest: number;
  readonly grace: number;
}
const arbTiming: fc.Arbitrary<Timing> = fc.record({ rest: fc.constantFrom(0, 1, 30_000), grace: fc.constantFrom(0, 30_000, 600_000) });

interface World {
  readonly topology: Topology;
  readonly subnets: readonly Subnet[];
  /** The subnet of node i (placed by its host IP). */
  readonly placement: readonly Subnet[];
}

// Blocks of 1..16 addresses, pod prefixes of 1..32 blocks, homes of 1..8 blocks,
// up to three subnets in slots of a network, IPv4 or IPv6.
const arbWorld: fc.Arbitrary<World> = fc
  .record({
    v6: fc.integer({ min: 0, max: 3 }).map((x) => x === 0),
    blockHostBits: fc.integer({ min: 0, max: 4 }),
    homeUp: fc.integer({ min: 0, max: 3 }),
    pods: fc.array(fc.record({ up: fc.integer({ min: 0, max: 5 }), slot: fc.nat() }), { minLength: 1, maxLength: 3 }),
    nodeSubnet: fc.array(fc.nat(), { minLength: NODES, maxLength: NODES }),
  })
  .map(({ v6, blockHostBits, homeUp, pods, nodeSubnet }): World => {
    const family = v6 ? 6 : 4;
    const blockSize = maxLen(family) - blockHostBits;
    const network: Prefix = { ...parseAddress(v6 ? 'fd00:64::' : '100.64.0.0'), len: blockSize - 7 };
    const slotSize = 1n << BigInt(blockHostBits + 5);
    const subnets = pods.map(({ up, slot }, i): Subnet => {
      const podSize = 1n << BigInt(blockHostBits + up);
      const addr = network.addr + BigInt(i) * slotSize + (BigInt(slot) % (slotSize / podSize)) * podSize;
      return {
        id: `subnet-${i}`,
        zone: `zone-${i % 2}`,
        cidr: parsePrefix(`198.18.${i}.0/24`),
        podPrefix: { family, addr, len: blockSize - up },
        podPrefixExplicit: true,
        routeTable: undefined,
      };
    });
    const zones = ['zone-0', 'zone-1'].map((name) => ({ name, subnets: subnets.filter((s) => s.zone === name) }));
    const topology: Topology = { network, blockSize, nodeHomeSize: blockSize - homeUp, subnetSize: blockSize - 5, zones };
    const placement = nodeSubnet.map((k, i) =>
      placeNode(topology, { name: `n${i}`, hostIP: `198.18.${k % subnets.length}.${10 + i}` }),
    );
    return { topology, subnets, placement };
  });

type Op =
  | { kind: 'join' | 'remove' | 'claim' | 'reclaim'; node: number }
  | { kind: 'alloc' | 'release'; node: number; pod: number }
  | { kind: 'advance'; ms: number };

const arbNode = fc.integer({ min: 0, max: NODES - 1 });
const arbPod = fc.integer({ min: 0, max: 11 });
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('join' as const), node: arbNode }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), node: arbNode }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('claim' as const), node: arbNode }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('reclaim' as const), node: arbNode }) },
  { weight: 7, arbitrary: fc.record({ kind: fc.constant('alloc' as const), node: arbNode, pod: arbPod }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('release' as const), node: arbNode, pod: arbPod }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(1, 29_999, 30_000, 599_999, 600_000) }) },
);

const parsedPrefixes = new Map<string, Prefix>();
/** parsePrefix, remembered (IPv6 text is slow to parse and the checks parse a lot). */
const P = (text: string): Prefix => {
  let p = parsedPrefixes.get(text);
  if (p === undefined) parsedPrefixes.set(text, (p = parsePrefix(text)));
  return p;
};
// Pod p is interface eth(p & 1) of container c(p >> 1).
const podRef = (pod: number): { containerId: string; ifName: string } => ({ containerId: `c${pod >> 1}`, ifName: `eth${pod & 1}` });
const podKey = (containerId: string, ifName: string): string => `${containerId}/${ifName}`;
const popcount = (n: number): number => n.toString(2).replace(/0/g, '').length;

/** A MemoryIpamStore that counts the compare-and-swaps it refused. */
class CountingStore extends MemoryIpamStore {
  lost = 0;

  override async createClaim(claim: ClaimRecord, first?: AddressRecord): Promise<string | undefined> {
    return this.count(await super.createClaim(claim, first));
  }

  override async createAddress(record: AddressRecord, claimVersion: string): Promise<string | undefined> {
    return this.count(await super.createAddress(record, claimVersion));
  }

  override async updateAddress(record: AddressRecord, version: string, claimVersion: string): Promise<string | undefined> {
    return this.count(await super.updateAddress(record, version, claimVersion));
  }

  override async releaseBlock(node: string, prefix: string, claimVersion: string, revision: string): Promise<boolean> {
    const ok = await super.releaseBlock(node, prefix, claimVersion, revision);
    if (!ok) this.lost++;
    return ok;
  }

  private count(version: string | undefined): string | undefined {
    if (version === undefined) this.lost++;
    return version;
  }
}

/** Runs ops against one store and keeps the model of who holds which address. */
class Harness {
  now = 1_000_000;
  readonly store: CountingStore;
  /** ipams[node][replica]: independent allocators of the same node on the same store. */
  readonly ipams: Ipam[][];
  /** node → pod key → address: what every successful call so far implies. */
  readonly model = new Map<string, Map<string, string>>();
  /** node/pod key → the allocator that allocated it last. */
  readonly by = new Map<string, number>();

  constructor(readonly world: World, readonly timing: Timing, hook: StoreHook | undefined, replicas = 1) {
    this.store = new CountingStore(hook === undefined ? {} : { hook });
    const options = { topology: world.topology, store: this.store, claims: this.store, clock: () => this.now, maxRetries: 64 };
    const periods = { addressRestMs: timing.rest, blockGraceMs: timing.grace };
    this.ipams = world.placement.map((subnet, i) =>
      Array.from({ length: replicas }, () => new Ipam({ ...options, ...periods, node: `n${i}`, subnet })),
    );
    for (let i = 0; i < NODES; i++) this.model.set(`n${i}`, new Map());
  }

  /** Runs one op; returns the error it ended with (Exhausted is a legitimate outcome). */
  async exec(op: Op, replica = 0): Promise<unknown> {
    if (op.kind === 'advance') {
      this.now += op.ms;
      return undefined;
    }
    const ipam = this.ipams[op.node]?.[replica] as Ipam;
    const model = this.model.get(ipam.node) as Map<string, string>;
    try {
      if (op.kind === 'alloc') {
        const ref = podRef(op.pod);
        const got = await ipam.allocate(ref);
        const key = podKey(ref.containerId, ref.ifName);
        const had = model.get(key);
        // Idempotent within one allocator: it keeps what it handed out in memory. Another
        // allocator of the same node learns it only when one of its writes loses a race.
        if (had !== undefined && this.by.get(`${ipam.node}/${key}`) === replica) assert.equal(got.address, had, 'allocate is idempotent');
        model.set(key, got.address);
        this.by.set(`${ipam.node}/${key}`, replica);
        assert.ok(contains(P(got.block), parseAddress(got.address)), 'address inside the returned block');
      } else if (op.kind === 'release') {
        const ref = podRef(op.pod);
        const key = podKey(ref.containerId, ref.ifName);
        assert.equal(await ipam.release(ref.containerId, ref.ifName), model.get(key), 'release returns the held address');
        model.delete(key);
      } else if (op.kind === 'remove') {
        await ipam.releaseNode();
        model.clear();
      } else if (op.kind === 'join') {
        await ipam.ensureBlock();
      } else if (op.kind === 'claim') {
        await ipam.claimBlock();
      } else {
        await ipam.releaseEmptyBlocks();
      }
      return undefined;
    } catch (err) {
      if (!hasCode(err, ErrorCode.Exhausted)) throw err;
      return err;
    }
  }
}

const subnetOf = (world: World, node: string): Subnet => world.placement[Number(node.slice(1))] as Subnet;
const blocksOf = (records: readonly BlockRecord[], node: string): Prefix[] =>
  records.filter((r) => r.node === node).map((r) => P(r.prefix));
const freeBlocks = (world: World, records: readonly BlockRecord[], subnet: Subnet): Prefix[] => {
  const taken = records.map((r) => P(r.prefix));
  return split(subnet.podPrefix, world.topology.blockSize).filter((b) => !taken.some((c) => contains(b, c) || contains(c, b)));
};

/** Invariants 1 and 3 on a store snapshot; invariant 4 against the model. */
function checkState(h: Harness, records: readonly BlockRecord[]): void {
  const blocks = records.map((r) => ({ r, p: P(r.prefix) })).sort((a, b) => (a.p.addr < b.p.addr ? -1 : 1));
  for (const [i, { r, p }] of blocks.entries()) {
    const subnet = subnetOf(h.world, r.node);
    // (1) blocks and addresses inside the owner's subnet pod prefix, blocks of the configured size
    assert.ok(contains(subnet.podPrefix, p), `${r.prefix} of ${r.node} inside ${subnet.id}`);
    assert.equal(p.len, h.world.topology.blockSize);
    assert.equal(r.subnet, subnet.id);
    for (const a of Object.keys(r.allocations)) {
      assert.ok(contains(p, parseAddress(a)), `${a} inside ${r.prefix}`);
      assert.ok(!(a in r.released), `${a} both allocated and released`);
    }
    // (3) no block owned twice: sorted blocks do not overlap
    const next = blocks[i + 1];
    if (next !== undefined) assert.ok(p.addr + size(p) <= next.p.addr, `${r.prefix} overlaps ${next.r.prefix}`);
    assert.equal(Object.keys(r.allocations).length === 0, r.emptySince !== undefined, `${r.prefix}: emptySince iff empty`);
  }
  // (3)+(4) each node's allocations are exactly what its successful calls returned: one address per
  // pod, nothing moved, nothing lost, nothing extra.
  for (const [node, model] of h.model) {
    const held = new Map<string, string>();
    for (const r of records.filter((x) => x.node === node)) {
      for (const [address, a] of Object.entries(r.allocations)) {
        const key = podKey(a.containerId, a.ifName);
        assert.ok(!held.has(key), `${node}: ${key} holds two addresses`);
        held.set(key, address);
      }
    }
    assert.deepEqual(held, model, `${node}: allocations match the model`);
  }
}

/**
 * (4) Records of nodes that did not act are untouched, and a block changes owner only when its
 * owner gave blocks back (remove, reclaim) and another acting node claimed it.
 */
function checkOthersUntouched(before: readonly BlockRecord[], after: readonly BlockRecord[], ops: readonly Op[]): void {
  const actors = new Set(ops.flatMap((op) => (op.kind === 'advance' ? [] : [`n${op.node}`])));
  const givers = new Set(ops.flatMap((op) => (op.kind === 'remove' || op.kind === 'reclaim' ? [`n${op.node}`] : [])));
  const now = new Map(after.map((r) => [r.prefix, r]));
  for (const r of before) {
    const a = now.get(r.prefix);
    if (!actors.has(r.node)) assert.deepEqual(a, r, `${r.prefix} of ${r.node} was touched by ${[...actors].join(',')}`);
    else if (a !== undefined && a.node !== r.node) {
      assert.ok(givers.has(r.node) && actors.has(a.node), `${r.prefix} moved from ${r.node} to ${a.node}`);
    }
  }
}

/**
 * (3) Released blocks are reusable: from the final store state, block choice
 * for a newcomer in each subnet keeps finding a free block until the claimed
 * blocks cover the pod prefix exactly.
 */
function checkFillable(h: Harness): void {
  const claimed: ClaimedBlock[] = h.store.snapshot().map((r) => ({ prefix: P(r.prefix), node: r.node }));
  for (const subnet of h.world.subnets) {
    for (let next = chooseBlock(h.world.topology, subnet, claimed, 'newcomer'); next !== undefined; ) {
      assert.ok(!claimed.some((c) => contains(c.prefix, next as Prefix) || contains(next as Prefix, c.prefix)), 'chose a taken block');
      claimed.push({ prefix: next, node: 'newcomer' });
      next = chooseBlock(h.world.topology, subnet, claimed, 'newcomer');
    }
    const all = claimed.map((c) => c.prefix).filter((p) => contains(subnet.podPrefix, p));
    assert.deepEqual(aggregate(all), [subnet.podPrefix], `${subnet.id} fully claimable`);
  }
}

t.test('sequential steps with lost CAS injected: invariants 1-4 hold after every step', async (t) => {
  let claimsChecked = 0;
  let pristineChecked = 0;
  let crowdedClaims = 0;
  let exhausted = 0;
  let reclaimed = 0;
  await fc.assert(
    fc.asyncProperty(arbWorld, arbTiming, fc.array(arbOp, { maxLength: 50, size: 'max' }), fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), async (world, timing, ops, loses) => {
      let w = 0;
      let streak = 0;
      const hook: StoreHook = (op) => {
        if (!WRITE_OPERATIONS.has(op)) return undefined;
        const lose = (loses[w++ % loses.length] as boolean) && streak < 3;
        streak = lose ? streak + 1 : 0;
        return lose ? 'lose' : undefined;
      };
      const h = new Harness(world, timing, hook);
      // Subnets where a block was given back or a claim found no entirely free home.
      const disturbed = new Set<string>();
      const claimants = new Map<string, Set<string>>();
      for (const op of ops) {
        const before = h.store.snapshot();
        const error = await h.exec(op);
        const after = h.store.snapshot();
        checkState(h, after);
        if (op.kind === 'advance') continue;
        const node = `n${op.node}`;
        checkOthersUntouched(before, after, [op]);
        const subnet = subnetOf(world, node);
        const homeLen = Math.min(homeSizeIn(world.topology, subnet), world.topology.blockSize);
        const free = freeBlocks(world, before, subnet);
        const mine = blocksOf(before, node).filter((b) => contains(subnet.podPrefix, b));
        const added = blocksOf(after, node).filter((b) => !before.some((r) => r.prefix === formatPrefix(b)));
        if (after.length < before.length) disturbed.add(subnet.id);
        if (op.kind === 'remove') assert.equal(blocksOf(after, node).length, 0, 'remove leaves no claim');
        if (op.kind === 'reclaim') {
          // Only blocks empty for the grace period go; all of them, except that one block stays.
          const idle = (r: BlockRecord): boolean =>
            Object.keys(r.allocations).length === 0 && h.now - (r.emptySince ?? r.claimedAt) >= timing.grace;
          const gone = before.filter((r) => r.node === node && !after.some((a) => a.prefix === r.prefix));
          assert.ok(gone.every(idle), 'reclaimed a block that was not idle');
          const left = after.filter((r) => r.node === node && contains(subnet.podPrefix, P(r.prefix)));
          if (mine.length > 0) assert.ok(left.length > 0, 'reclaim keeps one block');
          const idleLeft = left.filter(idle).length;
          assert.ok(idleLeft === 0 || (idleLeft === 1 && left.length === 1), 'an idle block was kept');
          reclaimed += gone.length;
        }
        if (error !== undefined) {
          exhausted++;
          // Exhausted only when there is truly nothing left (released addresses count as available).
          assert.equal(free.length, 0, `${op.kind}: Exhausted with free blocks`);
          if (op.kind === 'alloc') {
            for (const r of before.filter((x) => x.node === node)) {
              assert.equal(Object.keys(r.allocations).length, Number(size(P(r.prefix))), 'Exhausted with a free address');
            }
          }
        }
        if (added.length === 0) continue;
        assert.equal(added.length, 1, 'one step claims at most one block');
        const block = added[0] as Prefix;
        claimsChecked++;
        // (2) every claim leaves the node's aggregate count at the minimum any free block could give.
        const best = Math.min(...free.map((f) => aggregate([...mine, f]).length));
        assert.ok(free.some((f) => f.addr === block.addr), 'claimed a free block');
        assert.equal(aggregate([...mine, block]).length, best, 'claim minimises the aggregate count');
        // An allocation claims a block only when no address of the node is usable without resting.
        if (op.kind === 'alloc') {
          for (const r of before.filter((x) => x.node === node && contains(subnet.podPrefix, P(x.prefix)))) {
            const usable = Number(size(P(r.prefix))) - Object.keys(r.allocations).length;
            const resting = Object.values(r.released).filter((at) => h.now - at < timing.rest).length;
            assert.equal(usable, resting, `claimed a block while ${r.prefix} had a usable address`);
          }
        }
        const perHome = 1 << (world.topology.blockSize - homeLen);
        const freeHome = free.some((f) => {
          const home = supernet(f, homeLen);
          return home.addr === f.addr && free.filter((g) => contains(home, g)).length === perHome;
        });
        if (!freeHome) {
          disturbed.add(subnet.id);
          crowdedClaims++;
        }
        const who = claimants.get(subnet.id) ?? new Set<string>();
        claimants.set(subnet.id, who.add(node));
        if (!disturbed.has(subnet.id)) {
          // Undisturbed subnet: a node that has not outgrown its home holds the first n blocks
          // of one home (popcount(n) prefixes); a node alone in its subnet holds the first n
          // blocks of the pod prefix.
          const held = blocksOf(after, node).sort((a, b) => (a.addr < b.addr ? -1 : 1));
          const n = held.length;
          const alone = who.size === 1;
          if (alone || n <= perHome) {
            pristineChecked++;
            const start = alone ? subnet.podPrefix.addr : supernet(held[0] as Prefix, homeLen).addr;
            held.forEach((b, i) => assert.equal(b.addr, start + BigInt(i) * size(b), 'the first n blocks, in address order'));
            assert.equal(aggregate(held).length, popcount(n), 'popcount(n) prefixes');
          }
        }
      }
      checkFillable(h);
    }),
    { numRuns: RUNS },
  );
  t.ok(claimsChecked > RUNS, `claims checked for minimal aggregation: ${claimsChecked}`);
  t.ok(pristineChecked > RUNS / 2, `popcount checks: ${pristineChecked}`);
  t.ok(crowdedClaims > RUNS / 10, `claims in a subnet without an entirely free home: ${crowdedClaims}`);
  t.ok(reclaimed > RUNS / 20, `blocks given back by reclaim: ${reclaimed}`);
  t.ok(exhausted > RUNS / 10, `steps ending in Exhausted (checked legitimate): ${exhausted}`);
});

t.test('concurrent batches on one store, interleaved by fc.scheduler: invariants 1, 3, 4 after every batch', async (t) => {
  let batchesRun = 0;
  let concurrentWrites = 0;
  let lostRaces = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.scheduler(),
      arbWorld,
      arbTiming,
      fc.array(fc.array(arbOp, { minLength: 1, maxLength: 5, size: 'max' }), { maxLength: 10, size: 'max' }),
      async (s, world, timing, batches) => {
        const h = new Harness(world, timing, () => s.schedule(Promise.resolve()), 2);
        for (const batch of batches) {
          const before = h.store.snapshot();
          const writes = h.store.writes;
          // Every op of the batch starts before any store operation completes; the scheduler
          // decides the order in which their store operations run. A node's ops go to two
          // allocators of that node, so its own writes race too (only the compare-and-swap
          // keeps them apart): a pod always to the same one, and all of a node's ops to one
          // when the batch removes the node (so the model's order is the store's order).
          const removing = new Set(batch.flatMap((op) => (op.kind === 'remove' ? [op.node] : [])));
          const replica = (op: Op, i: number): number =>
            op.kind === 'advance' || removing.has(op.node) ? 0 : 'pod' in op ? op.pod & 1 : i & 1;
          await s.waitFor(Promise.all(batch.map((op, i) => h.exec(op, replica(op, i)))));
          const after = h.store.snapshot();
          checkState(h, after);
          checkOthersUntouched(before, after, batch);
          batchesRun++;
          if (batch.length > 1 && h.store.writes > writes) concurrentWrites++;
        }
        checkFillable(h);
        lostRaces += h.store.lost;
      },
    ),
    { numRuns: RUNS },
  );
  t.ok(batchesRun > RUNS, `batches checked: ${batchesRun}`);
  t.ok(concurrentWrites > RUNS / 2, `batches of several ops that wrote: ${concurrentWrites}`);
  t.ok(lostRaces > RUNS / 20, `compare-and-swaps lost to a concurrent writer (and retried): ${lostRaces}`);
});
