// Random topology files: whatever parses satisfies the invariants of
// topology.ts, and appending zones or subnets renumbers nothing.
import t from 'tap';
import fc from 'fast-check';
import { contains, formatPrefix, overlaps, parsePrefix, type Prefix } from '../../src/core/cidr.js';
import { parseTopology } from '../../src/core/topology-parse.js';
import { allSubnets, type Topology } from '../../src/core/topology.js';

const RUNS = 1000;

interface FileSubnet {
  id: string;
  cidr: string;
  podPrefix?: string;
}
interface File {
  network: string;
  subnetSize: number;
  zones: Array<{ name: string; subnets: FileSubnet[] }>;
}

const fmt = (family: 4, addr: bigint, len: number): string => formatPrefix({ family, addr, len });

/** An aligned prefix of length network.len + extra inside the network. */
function inside(network: Prefix, extra: number, index: number): string {
  const len = Math.min(26, network.len + extra);
  const count = 2 ** (len - network.len);
  return fmt(4, network.addr + BigInt(index % count) * (1n << BigInt(32 - len)), len);
}

const networkArb = fc
  .record({ len: fc.integer({ min: 10, max: 20 }), index: fc.nat() })
  .map(({ len, index }) => inside(parsePrefix('100.64.0.0/10'), len - 10, index))
  .map(parsePrefix);

/** Zones of subnets; host CIDRs are distinct /24s of 198.18.0.0/15, numbered from `firstHost`. */
function zonesArb(network: Prefix, zonePrefix: string, firstHost: number): fc.Arbitrary<File['zones']> {
  const subnetArb = fc.record({
    // One subnet in four names its pod prefix; the others are carved.
    explicit: fc.oneof(
      { arbitrary: fc.constant(null), weight: 3 },
      { arbitrary: fc.record({ extra: fc.integer({ min: 1, max: 10 }), index: fc.nat() }), weight: 1 },
    ),
  });
  return fc.array(fc.array(subnetArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 4 }).map((zones) => {
    let host = firstHost;
    return zones.map((subnets, zi) => ({
      name: `${zonePrefix}${zi}`,
      subnets: subnets.map(({ explicit }) => {
        const n = host++;
        const s: FileSubnet = { id: `subnet-${n}`, cidr: `198.${18 + (n >> 8)}.${n & 255}.0/24` };
        if (explicit !== null) s.podPrefix = inside(network, explicit.extra, explicit.index);
        return s;
      }),
    }));
  });
}

const fileArb: fc.Arbitrary<File> = networkArb.chain((network) =>
  fc
    .record({ depth: fc.integer({ min: 0, max: 8 }), zones: zonesArb(network, 'zone-', 0) })
    .map(({ depth, zones }) => ({ network: formatPrefix(network), subnetSize: Math.min(26, network.len + depth), zones })),
);

function parse(file: File): Topology | string[] {
  const r = parseTopology(JSON.stringify(file), 'random.yaml');
  return 'topology' in r ? r.topology : r.errors.map((e) => `${e.path}: ${e.message}`);
}

/** The explicit pod prefixes of the file, if they are pairwise disjoint. */
function explicitDisjoint(file: File): boolean {
  const ps = file.zones.flatMap((z) => z.subnets.flatMap((s) => (s.podPrefix === undefined ? [] : [parsePrefix(s.podPrefix)])));
  return ps.every((p, i) => ps.slice(i + 1).every((q) => !overlaps(p, q)));
}

t.test('property: a parsed topology keeps every invariant', async (t) => {
  const seen = { valid: 0, overlapping: 0, tooSmall: 0 };
  fc.assert(
    fc.property(fileArb, (file) => {
      const r = parse(file);
      if (Array.isArray(r)) {
        // The only ways this generator can fail: explicit prefixes overlap, or carving runs out of room.
        if (!explicitDisjoint(file)) {
          seen.overlapping++;
          return r.every((e) => / overlaps .*, the pod prefix of subnet /.test(e));
        }
        seen.tooSmall++;
        return r.length === 1 && /is too small: it has room for \d+ carved/.test(r[0] as string);
      }
      seen.valid++;
      const subnets = allSubnets(r);
      const fileSubnets = file.zones.flatMap((z) => z.subnets);
      return subnets.every((s, i) => {
        const p = s.podPrefix;
        const written = fileSubnets[i]?.podPrefix;
        return (
          contains(r.network, p) &&
          p.len <= r.blockSize &&
          (p.addr & ((1n << BigInt(32 - p.len)) - 1n)) === 0n &&
          (written === undefined ? !s.podPrefixExplicit && p.len === file.subnetSize : s.podPrefixExplicit && formatPrefix(p) === written) &&
          subnets.slice(i + 1).every((o) => !overlaps(p, o.podPrefix) && !overlaps(s.cidr, o.cidr))
        );
      });
    }),
    { numRuns: RUNS },
  );
  t.ok(seen.valid > RUNS / 3 && seen.overlapping > 0 && seen.tooSmall > 0, `outcomes: ${JSON.stringify(seen)}`);
});

t.test('property: appending zones and subnets renumbers nothing', async (t) => {
  const arb = fileArb.chain((file) =>
    fc.record({
      file: fc.constant(file),
      moreZones: zonesArb(parsePrefix(file.network), 'added-', 100),
      intoLastZone: fc.boolean(),
    }),
  );
  let compared = 0;
  fc.assert(
    fc.property(arb, ({ file, moreZones, intoLastZone }) => {
      const before = parse(file);
      if (Array.isArray(before)) return true;
      // New explicit prefixes must not take space already assigned: drop those that would.
      const taken = allSubnets(before).map((s) => s.podPrefix);
      for (const z of moreZones) {
        for (const s of z.subnets) {
          if (s.podPrefix === undefined) continue;
          const p = parsePrefix(s.podPrefix);
          if (taken.some((q) => overlaps(p, q))) delete s.podPrefix;
          else taken.push(p);
        }
      }
      const grown: File = intoLastZone
        ? {
            ...file,
            zones: file.zones.map((z, i) =>
              i === file.zones.length - 1 ? { ...z, subnets: [...z.subnets, ...moreZones.flatMap((m) => m.subnets)] } : z,
            ),
          }
        : { ...file, zones: [...file.zones, ...moreZones] };
      const after = parse(grown);
      if (Array.isArray(after)) return after.every((e) => /is too small/.test(e));
      compared++;
      const now = allSubnets(after);
      return allSubnets(before).every((s, i) => formatPrefix(s.podPrefix) === formatPrefix((now[i] as typeof s).podPrefix));
    }),
    { numRuns: RUNS },
  );
  t.ok(compared > RUNS / 3, `compared ${compared} topologies before and after growing`);
});
