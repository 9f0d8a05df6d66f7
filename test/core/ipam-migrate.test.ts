// Migration from the old layout (addresses inside the Block claim) is crash-safe:
// killed at any write, before or after the write lands, a re-run finishes it with
// the same set of allocated addresses, none twice, and nothing is handed out before
// the node's migration is done.
import t from 'tap';
import fc from 'fast-check';
import { parsePrefix } from '../../src/core/cidr.js';
import { Ipam } from '../../src/core/ipam.js';
import { migrateBlock } from '../../src/core/ipam-migrate.js';
import type { AddressRecord, BlockRecord, ClaimRecord } from '../../src/core/ipam-store.js';
import { MemoryIpamStore } from '../../src/core/memory-store.js';
import type { Subnet, Topology } from '../../src/core/topology.js';

const P = parsePrefix;
const subnet: Subnet = { id: 'subnet-m', zone: 'z1', cidr: P('198.18.0.0/24'), podPrefix: P('100.64.0.0/26'), podPrefixExplicit: true, routeTable: undefined };
const topology: Topology = { network: P('100.64.0.0/16'), blockSize: 28, nodeHomeSize: 26, subnetSize: 24, zones: [{ name: 'z1', subnets: [subnet] }] };

class Crash extends Error {}

/** A store that dies at its k-th write: before the write lands, or after it landed but before the caller hears of it. */
class CrashingStore extends MemoryIpamStore {
  attempts = 0;
  crashAt = Infinity;
  landed = false;

  private async write<T>(run: () => Promise<T>): Promise<T> {
    this.attempts++;
    if (this.attempts === this.crashAt && !this.landed) throw new Crash('killed before the write');
    const out = await run();
    if (this.attempts === this.crashAt) throw new Crash('killed after the write');
    return out;
  }

  override createClaim(claim: ClaimRecord, first?: AddressRecord): Promise<string | undefined> {
    return this.write(() => super.createClaim(claim, first));
  }
  override rewriteClaim(claim: ClaimRecord, version: string): Promise<string | undefined> {
    return this.write(() => super.rewriteClaim(claim, version));
  }
  override createAddress(record: AddressRecord, claimVersion: string): Promise<string | undefined> {
    return this.write(() => super.createAddress(record, claimVersion));
  }
  override updateAddress(record: AddressRecord, version: string, claimVersion: string): Promise<string | undefined> {
    return this.write(() => super.updateAddress(record, version, claimVersion));
  }
  override releaseBlock(node: string, prefix: string, claimVersion: string, revision: string): Promise<boolean> {
    return this.write(() => super.releaseBlock(node, prefix, claimVersion, revision));
  }
}

/** Old-layout blocks: n1 holds some of the four /28 blocks, n2 the others; slots pick allocated / released / unused. */
const arbLegacy = fc
  .array(fc.record({ owner: fc.constantFrom('n1', 'n2'), slots: fc.array(fc.constantFrom('a', 'r', '-'), { minLength: 16, maxLength: 16 }) }), { minLength: 1, maxLength: 4 })
  .map((blocks) =>
    blocks.map(({ owner, slots }, i): BlockRecord => {
      const prefix = `100.64.0.${i * 16}/28`;
      const b: BlockRecord = { prefix, subnet: subnet.id, node: owner, claimedAt: 1, allocations: {}, released: {} };
      slots.forEach((s, j) => {
        const address = `100.64.0.${i * 16 + j}`;
        if (s === 'a') b.allocations[address] = { containerId: `${owner}-c${i}-${j}`, ifName: 'eth0', allocatedAt: 2 };
        if (s === 'r') b.released[address] = 3 + j;
      });
      return b;
    }),
  );

const allocated = (blocks: readonly BlockRecord[], node: string): Map<string, string> => {
  const out = new Map<string, string>();
  for (const b of blocks.filter((x) => x.node === node)) {
    for (const [address, a] of Object.entries(b.allocations)) {
      if (out.has(address)) throw new Error(`${address} twice`);
      out.set(address, a.containerId);
    }
  }
  return out;
};

const ipamOn = (store: MemoryIpamStore): Ipam => new Ipam({ topology, subnet, store, claims: store, node: 'n1', clock: () => 100, addressRestMs: 0 });

t.test('killed at every write, before or after it lands, a re-run migrates exactly the old allocations', async (t) => {
  let crashes = 0;
  await fc.assert(
    fc.asyncProperty(arbLegacy, fc.boolean(), async (legacy, landed) => {
      const clean = new CrashingStore({ legacyBlocks: legacy });
      await ipamOn(clean).load();
      const writes = clean.attempts;
      for (let k = 1; k <= writes; k++) {
        const store = new CrashingStore({ legacyBlocks: legacy });
        store.crashAt = k;
        store.landed = landed;
        // The first process dies during its migration: it hands out nothing.
        const first = ipamOn(store);
        const crashed = await first.allocate({ containerId: 'new', ifName: 'eth0' }).then(
          () => false,
          (err) => err instanceof Crash,
        );
        if (!crashed) throw new Error(`write ${k} of ${writes} did not crash the migration`);
        crashes++;
        if (store.addressRecords().some((r) => r.allocation?.containerId === 'new')) throw new Error('allocated before the migration was done');
        store.crashAt = Infinity;
        // A new process finishes the job.
        const second = ipamOn(store);
        await second.load();
        const after = store.snapshot();
        t.strictSame(allocated(after, 'n1'), allocated(legacy, 'n1'), `k=${k}: n1's allocations unchanged`);
        t.strictSame(allocated(after, 'n2'), allocated(legacy, 'n2'), `k=${k}: n2's old-layout allocations untouched`);
        for (const b of legacy) t.equal(store.isLegacy(b.prefix), b.node === 'n2', `k=${k}: ${b.prefix} of ${b.node} layout`);
        const resting = Object.fromEntries(after.filter((b) => b.node === 'n1').flatMap((b) => Object.entries(b.released)));
        t.strictSame(resting, Object.fromEntries(legacy.filter((b) => b.node === 'n1').flatMap((b) => Object.entries(b.released))), `k=${k}: resting addresses kept`);
        // What is handed out next is none of the old addresses of any node.
        const taken = new Set([...allocated(legacy, 'n1').keys(), ...allocated(legacy, 'n2').keys()]);
        try {
          const got = await second.allocate({ containerId: 'new', ifName: 'eth0' });
          t.notOk(taken.has(got.address), `k=${k}: ${got.address} is free`);
        } catch (err) {
          t.match(err, { code: 'EXHAUSTED' }, `k=${k}: the subnet may be full`);
        }
      }
    }),
    { numRuns: 25 },
  );
  t.ok(crashes > 50, `crashes tried: ${crashes}`);
});

t.test('migrateBlock is idempotent and leaves claims of other nodes alone', async (t) => {
  const mine: BlockRecord = {
    prefix: '100.64.0.0/28', subnet: subnet.id, node: 'n1', claimedAt: 1,
    allocations: { '100.64.0.3': { containerId: 'c', ifName: 'eth0', allocatedAt: 2 } }, released: { '100.64.0.4': 5 },
  };
  const theirs: BlockRecord = { ...mine, prefix: '100.64.0.16/28', node: 'n2', allocations: { '100.64.0.17': { containerId: 'd', ifName: 'eth0', allocatedAt: 2 } } };
  const store = new MemoryIpamStore({ legacyBlocks: [mine, theirs] });
  const first = await migrateBlock(store, 'n1', mine.prefix);
  t.equal(first.written, 2);
  t.same(first.claim?.legacy, undefined);
  const writes = store.writes;
  t.equal((await migrateBlock(store, 'n1', mine.prefix)).written, 0, 'nothing left to do');
  t.equal(store.writes, writes, 'and nothing written');
  t.same(await migrateBlock(store, 'n1', theirs.prefix), { claim: undefined, written: 0 }, 'not the node’s claim');
  t.ok(store.isLegacy(theirs.prefix));
  t.same(await migrateBlock(store, 'n1', '100.64.0.32/28'), { claim: undefined, written: 0 }, 'no claim');
});
