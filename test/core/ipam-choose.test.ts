import t from 'tap';
import fc from 'fast-check';
import { aggregate, contains, formatPrefix, parsePrefix, split, supernet, type Prefix } from '../../src/core/cidr.js';
import { AggregateCounter, chooseBlock, chooseBlockWithReason, type ClaimedBlock } from '../../src/core/ipam-choose.js';
import type { Subnet, Topology } from '../../src/core/topology.js';
import { ErrorCode } from '../../src/errors.js';

const P = parsePrefix;

function subnet(id: string, cidr: string, pod: string): Subnet {
  return { id, zone: 'z1', cidr: P(cidr), podPrefix: P(pod), podPrefixExplicit: true, routeTable: undefined };
}

function topology(network: string, blockSize: number, nodeHomeSize: number, subnets: Subnet[]): Topology {
  return { network: P(network), blockSize, nodeHomeSize, subnetSize: P(network).len, zones: [{ name: 'z1', subnets }] };
}

const claims = (spec: string): ClaimedBlock[] =>
  spec
    .split(/\s+/)
    .filter((s) => s !== '')
    .map((s) => {
      const [node, prefix] = s.split('=') as [string, string];
      return { node, prefix: P(prefix) };
    });

// Pod prefix /24, blocks /28 (16 blocks), homes /26 (4 homes of 4 blocks).
const s1 = subnet('subnet-a', '198.18.0.0/24', '100.64.0.0/24');
const s2 = subnet('subnet-b', '198.18.1.0/24', '100.64.1.0/24');
const topo = topology('100.64.0.0/16', 28, 26, [s1, s2]);
const homeA = 'A=100.64.0.0/28 A=100.64.0.16/28 A=100.64.0.32/28 A=100.64.0.48/28';

t.test('block choice follows the home / buddy / new-home / crowded policy', async (t) => {
  const cases: Array<{ name: string; claimed: string; node: string; want: string | undefined; reason?: string; topo?: Topology }> = [
    { name: 'first node starts at the first home', claimed: '', node: 'A', want: '100.64.0.0/28', reason: 'new-home' },
    { name: 'a home fills in address order', claimed: 'A=100.64.0.0/28', node: 'A', want: '100.64.0.16/28', reason: 'home' },
    {
      name: 'third block completes the /27 pair first',
      claimed: 'A=100.64.0.0/28 A=100.64.0.16/28 A=100.64.0.32/28',
      node: 'A',
      want: '100.64.0.48/28',
      reason: 'home',
    },
    {
      name: 'a hole left by a released block fills first',
      claimed: 'A=100.64.0.0/28 A=100.64.0.32/28 A=100.64.0.48/28',
      node: 'A',
      want: '100.64.0.16/28',
      reason: 'home',
    },
    {
      name: 'the hole that merges wins over a lower one that does not',
      claimed: 'A=100.64.0.16/28 A=100.64.0.32/28 A=100.64.0.48/28 B=100.64.0.64/28',
      node: 'A',
      want: '100.64.0.0/28',
      reason: 'home',
    },
    {
      name: 'merge beats address order inside a home',
      claimed: 'A=100.64.0.32/28 A=100.64.0.0/28 A=100.64.0.16/28',
      node: 'A',
      want: '100.64.0.48/28',
      reason: 'home',
    },
    { name: 'a full home grows into its free buddy', claimed: homeA, node: 'A', want: '100.64.0.64/28', reason: 'buddy' },
    {
      name: 'buddy growth doubles again',
      claimed: `${homeA} A=100.64.0.64/26`,
      node: 'A',
      want: '100.64.0.128/28',
      reason: 'buddy',
    },
    {
      name: 'a taken buddy sends the node to a new free home',
      claimed: `${homeA} B=100.64.0.64/28`,
      node: 'A',
      want: '100.64.0.128/28',
      reason: 'new-home',
    },
    { name: 'a second node avoids the first node’s home', claimed: 'A=100.64.0.0/28', node: 'B', want: '100.64.0.64/28', reason: 'new-home' },
    {
      name: 'a third node takes the next entirely free home',
      claimed: 'A=100.64.0.0/28 B=100.64.0.64/28 B=100.64.0.80/28',
      node: 'C',
      want: '100.64.0.128/28',
      reason: 'new-home',
    },
    {
      name: 'a crowded subnet falls back to the lowest free block',
      claimed: 'A=100.64.0.0/28 B=100.64.0.64/28 C=100.64.0.128/28 D=100.64.0.192/28',
      node: 'E',
      want: '100.64.0.16/28',
      reason: 'crowded',
    },
    {
      name: 'a crowded node with a full home takes the lowest free block',
      claimed: `${homeA} B=100.64.0.64/28 C=100.64.0.128/28 D=100.64.0.192/28`,
      node: 'A',
      want: '100.64.0.80/28',
      reason: 'crowded',
    },
    {
      name: 'claims in another subnet do not matter',
      claimed: 'X=100.64.1.0/28 X=100.64.1.16/28',
      node: 'A',
      want: '100.64.0.0/28',
      reason: 'new-home',
    },
    {
      name: 'a claim overlapping the pod prefix from elsewhere is respected',
      claimed: 'X=100.64.0.0/25',
      node: 'A',
      want: '100.64.0.128/28',
      reason: 'new-home',
    },
    {
      name: 'a block of another size is respected',
      claimed: 'A=100.64.0.0/29',
      node: 'B',
      want: '100.64.0.64/28',
      reason: 'new-home',
    },
    { name: 'a full subnet has no block', claimed: 'A=100.64.0.0/25 B=100.64.0.128/25', node: 'C', want: undefined },
    {
      name: 'home of one block: buddy merges',
      claimed: 'A=100.64.0.0/28',
      node: 'A',
      want: '100.64.0.16/28',
      reason: 'buddy',
      topo: topology('100.64.0.0/16', 28, 28, [s1]),
    },
    {
      name: 'home of one block: new node skips the neighbour of nobody in particular',
      claimed: 'A=100.64.0.0/28',
      node: 'B',
      want: '100.64.0.16/28',
      reason: 'new-home',
      topo: topology('100.64.0.0/16', 28, 28, [s1]),
    },
    {
      name: 'an odd claim smaller than a block has no buddy block',
      claimed: 'A=100.64.0.0/29 B=100.64.0.8/29',
      node: 'A',
      want: '100.64.0.16/28',
      reason: 'new-home',
      topo: topology('100.64.0.0/16', 28, 28, [s1]),
    },
    {
      name: 'home larger than the pod prefix is the whole pod prefix',
      claimed: 'A=100.64.0.0/28',
      node: 'B',
      want: '100.64.0.16/28',
      reason: 'crowded',
      topo: topology('100.64.0.0/16', 28, 20, [s1]),
    },
    {
      name: 'home smaller than a block is a block',
      claimed: 'A=100.64.0.0/28',
      node: 'A',
      want: '100.64.0.16/28',
      reason: 'buddy',
      topo: topology('100.64.0.0/16', 28, 30, [s1]),
    },
  ];
  for (const c of cases) {
    const choice = chooseBlockWithReason(c.topo ?? topo, s1, claims(c.claimed), c.node);
    t.equal(choice === undefined ? undefined : formatPrefix(choice.block), c.want, c.name);
    t.equal(choice?.reason, c.reason, `${c.name}: reason`);
    t.same(chooseBlock(c.topo ?? topo, s1, claims(c.claimed), c.node), choice?.block, `${c.name}: chooseBlock agrees`);
  }
});

t.test('a node filling a fresh home in address order reaches popcount(n) prefixes', async (t) => {
  const claimed: ClaimedBlock[] = [];
  for (let n = 1; n <= 16; n++) {
    const block = chooseBlock(topo, s1, claimed, 'A') as Prefix;
    claimed.push({ node: 'A', prefix: block });
    const popcount = n.toString(2).replace(/0/g, '').length;
    t.equal(aggregate(claimed.map((c) => c.prefix)).length, popcount, `${n} blocks`);
  }
  t.equal(chooseBlock(topo, s1, claimed, 'A'), undefined, 'then the subnet is full');
});

t.test('the answer does not depend on the order of the claims', async (t) => {
  const spec = claims('A=100.64.0.0/28 A=100.64.0.48/28 B=100.64.0.64/28 A=100.64.0.32/28 C=100.64.0.128/28');
  const want = chooseBlock(topo, s1, spec, 'A');
  t.equal(formatPrefix(want as Prefix), '100.64.0.16/28');
  t.same(chooseBlock(topo, s1, [...spec].reverse(), 'A'), want);
  t.same(chooseBlock(topo, s1, [spec[2], spec[0], spec[4], spec[1], spec[3]] as ClaimedBlock[], 'A'), want);
});

t.test('IPv6 pod prefixes with astronomically many homes are cheap', async (t) => {
  const s6 = subnet('subnet-6', 'fd00:ffff::/64', 'fd00:64::/48');
  const topo6 = topology('fd00:64::/40', 120, 112, [s6]);
  const claimed = claims('A=fd00:64::/120 B=fd00:64::1:0/120 C=fd00:64::2:0/112');
  t.equal(formatPrefix(chooseBlock(topo6, s6, claimed, 'A') as Prefix), 'fd00:64::100/120');
  t.equal(formatPrefix(chooseBlock(topo6, s6, claimed, 'D') as Prefix), 'fd00:64::3:0/120');
});

t.test('a node owning the whole address space has no buddy', async (t) => {
  const all = subnet('everything', '198.18.0.0/24', '0.0.0.0/0');
  const topo0 = topology('0.0.0.0/0', 0, 0, [all]);
  t.same(chooseBlockWithReason(topo0, all, [], 'A'), { block: P('0.0.0.0/0'), reason: 'new-home' });
  t.equal(chooseBlock(topo0, all, claims('A=0.0.0.0/0'), 'A'), undefined);
});

t.test('a block size that does not fit the pod prefix is a topology error', async (t) => {
  for (const blockSize of [23, 33, 26.5]) {
    t.throws(
      () => chooseBlock(topology('100.64.0.0/16', blockSize, 22, [s1]), s1, [], 'A'),
      { code: ErrorCode.Topology, message: /subnet-a/ },
      `/${blockSize}`,
    );
  }
});

t.test('AggregateCounter predicts the aggregate count after adding a block', async (t) => {
  const set = ['100.64.0.0/28', '100.64.0.16/28', '100.64.0.32/28', '100.64.0.64/28'].map(P);
  const counter = new AggregateCounter(set);
  t.equal(counter.count, 3);
  for (const add of ['100.64.0.48/28', '100.64.0.80/28', '100.64.0.96/28', '100.64.0.128/28']) {
    t.equal(counter.after(P(add)), aggregate([...set, P(add)]).length, add);
  }
  t.equal(new AggregateCounter([P('0.0.0.0/1')]).after(P('128.0.0.0/1')), 1, 'merging up to /0');
});

t.test('on any claimed set: a free block inside the pod prefix, minimal aggregation, order-independent', async (t) => {
  // Pod prefixes of 1..64 blocks, homes of 1..16 blocks, claims of random blocks by nodes A..D.
  const arb = fc
    .record({
      podLen: fc.integer({ min: 22, max: 28 }),
      homeUp: fc.integer({ min: 0, max: 4 }),
      owners: fc.array(fc.constantFrom('A', 'B', 'C', 'D', ''), { minLength: 64, maxLength: 64 }),
      node: fc.constantFrom('A', 'B', 'E'),
      seed: fc.nat(),
    })
    .map(({ podLen, homeUp, owners, node, seed }) => {
      const s = subnet('subnet-p', '198.18.0.0/24', `100.64.0.0/${podLen}`);
      const topo = topology('100.64.0.0/16', 28, 28 - homeUp, [s]);
      const blocks = split(s.podPrefix, 28);
      const claimed = blocks.flatMap((prefix, i) => (owners[i] ? [{ prefix, node: owners[i] as string }] : []));
      const shuffled = claimed.map((c, i) => ({ c, k: (i * 7919 + seed) % 1009 })).sort((a, b) => a.k - b.k).map((x) => x.c);
      return { s, topo, blocks, claimed, shuffled, node };
    });
  const reasons = new Map<string, number>();
  fc.assert(
    fc.property(arb, ({ s, topo, blocks, claimed, shuffled, node }) => {
      const choice = chooseBlockWithReason(topo, s, claimed, node);
      const free = blocks.filter((b) => !claimed.some((c) => c.prefix.addr === b.addr));
      if (choice === undefined) return free.length === 0;
      reasons.set(choice.reason, (reasons.get(choice.reason) ?? 0) + 1);
      const mine = claimed.filter((c) => c.node === node).map((c) => c.prefix);
      const count = (b: Prefix): number => aggregate([...mine, b]).length;
      const homeLen = Math.max(topo.nodeHomeSize, s.podPrefix.len);
      const freeHomes = free.filter((b) => {
        const home = supernet(b, homeLen);
        return home.addr === b.addr && free.filter((f) => contains(home, f)).length === 1 << (28 - homeLen);
      });
      return (
        free.some((b) => b.addr === choice.block.addr && b.len === choice.block.len) &&
        count(choice.block) === Math.min(...free.map(count)) &&
        (choice.reason !== 'new-home' || choice.block.addr === freeHomes[0]?.addr) &&
        (choice.reason !== 'crowded' || freeHomes.length === 0) &&
        JSON.stringify(chooseBlockWithReason(topo, s, shuffled, node), (_, v) => (typeof v === 'bigint' ? `${v}` : v)) ===
          JSON.stringify(choice, (_, v) => (typeof v === 'bigint' ? `${v}` : v))
      );
    }),
    { numRuns: 1000 },
  );
  for (const reason of ['home', 'buddy', 'new-home', 'crowded']) t.ok((reasons.get(reason) ?? 0) > 20, `${reason}: ${reasons.get(reason)}`);
});
