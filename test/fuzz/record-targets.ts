// The fuzzing of one record decoder (node records, advertisements, block
// claims, pod addresses, the stored topology), shared by one test file per
// record: random text and near-valid mutations of a valid record never
// throw, never hang, and every rejection is a reason that names the record
// and, for a field set to a wrong value, the field or the value.
import type { Test } from 'tap';
import fc from 'fast-check';
import { type DescMessage } from '@bufbuild/protobuf';
import { parsePrefix } from '../../src/core/cidr.js';
import { loadTopology } from '../../src/core/topology-parse.js';
import { decodeAddress } from '../../src/etcd/ipam-store.js';
import { AdvertisementSchema, BlockSchema, NodeSchema, PodAddressSchema, TopologySchema } from '../../src/gen/trellis/v1/records_pb.js';
import { Keys } from '../../src/state/keys.js';
import { decodeRecord, encodeRecord } from '../../src/state/records.js';
import { decodeStoredTopology, topologyToRecord } from '../../src/state/topology-record.js';
import { checkAdvertisement, checkBlock, checkNode, type BlockInfo } from '../../src/state/validate.js';
import { RUNS, anyText, mutate, mutationArb, spellings, type Mutation } from './fuzz-inputs.js';

export const topology = loadTopology(
  `
network: 100.96.0.0/16
subnetSize: 20
zones:
  - name: z
    subnets:
      - { id: s1, cidr: 198.18.1.0/24 }
      - { id: s2, cidr: 198.18.2.0/24 }
`,
  'test',
);
export const keys = new Keys();
const owned: BlockInfo[] = [
  { prefix: parsePrefix('100.96.0.0/26'), node: 'a', subnet: topology.zones[0]!.subnets[0]! },
  { prefix: parsePrefix('100.96.0.64/26'), node: 'a', subnet: topology.zones[0]!.subnets[0]! },
];

export type Verdict = { ok: true } | { ok: false; reason: string };

export interface Target {
  name: string;
  schema: DescMessage;
  valid: Record<string, unknown>;
  fields: string[];
  /** Decode and check the text as a reader does. */
  read: (text: string) => Verdict;
}

const ts = '2026-01-01T00:00:00Z';
const allocation = { containerId: 'c1', ifName: 'eth0', netns: '/var/run/netns/x', podNamespace: 'ns', podName: 'p', allocatedAt: ts, network: 'trellis' };

export const targets: Target[] = [
  {
    name: 'Node',
    schema: NodeSchema,
    valid: { schemaVersion: 1, name: 'a', subnet: 's1', zone: 'z', hostIp: '198.18.1.10', instanceId: 'i-1', healthEndpoint: 'http://198.18.1.10:9100', startedAt: ts, agentVersion: '0.1.0' },
    fields: ['schemaVersion', 'name', 'subnet', 'zone', 'hostIp', 'instanceId', 'healthEndpoint', 'startedAt', 'agentVersion'],
    read: (text) => {
      const d = decodeRecord(NodeSchema, text);
      return d.ok ? checkNode(d.value, 'a', topology) : d;
    },
  },
  {
    name: 'Block',
    schema: BlockSchema,
    valid: { schemaVersion: 1, prefix: '100.96.0.0/26', subnet: 's1', node: 'a', claimedAt: ts, allocations: { '100.96.0.5': allocation }, released: { '100.96.0.6': ts }, emptySince: ts },
    fields: ['schemaVersion', 'prefix', 'subnet', 'node', 'claimedAt', 'allocations', 'released', 'emptySince'],
    read: (text) => {
      const d = decodeRecord(BlockSchema, text);
      return d.ok ? checkBlock(d.value, parsePrefix('100.96.0.0/26'), topology) : d;
    },
  },
  {
    name: 'Advertisement',
    schema: AdvertisementSchema,
    valid: { schemaVersion: 1, node: 'a', subnet: 's1', nextHop: '198.18.1.10', prefixes: ['100.96.0.0/25'], instanceId: 'i-1', updatedAt: ts },
    fields: ['schemaVersion', 'node', 'subnet', 'nextHop', 'prefixes', 'instanceId', 'updatedAt'],
    read: (text) => {
      const d = decodeRecord(AdvertisementSchema, text);
      if (!d.ok) return d;
      const c = checkAdvertisement(d.value, { subnet: 's1', node: 'a' }, topology, owned);
      if (!c.ok) return c;
      const bad = c.value.rejected[0];
      return bad === undefined ? { ok: true } : { ok: false, reason: `prefix ${bad.prefix}: ${bad.reason}` };
    },
  },
  {
    name: 'PodAddress',
    schema: PodAddressSchema,
    valid: { schemaVersion: 1, address: '100.96.0.5', block: '100.96.0.0/26', node: 'a', allocation },
    fields: ['schemaVersion', 'address', 'block', 'node', 'allocation', 'allocation.containerId', 'allocation.allocatedAt', 'releasedAt'],
    read: (text) => decodeAddress(text),
  },
  {
    name: 'Topology',
    schema: TopologySchema,
    valid: JSON.parse(encodeRecord(TopologySchema, topologyToRecord(topology, 3n, Date.parse(ts)))) as Record<string, unknown>,
    fields: ['schemaVersion', 'network', 'blockSize', 'nodeHomeSize', 'subnetSize', 'zones', 'generation', 'appliedAt'],
    read: (text) => decodeStoredTopology(text),
  },
];

/** Run `read` and turn a throw into a property failure that shows the input. */
function verdict(target: Target, text: string): Verdict {
  let v: Verdict;
  try {
    v = target.read(text);
  } catch (err) {
    throw new Error(`${target.name} reader threw on ${JSON.stringify(text).slice(0, 300)}: ${String(err)}`);
  }
  if (!v.ok && (typeof v.reason !== 'string' || v.reason.trim() === '')) throw new Error(`${target.name}: empty reason for ${JSON.stringify(text)}`);
  return v;
}

/** The three fuzz tests of the record called `name`. */
export function fuzzRecord(t: Test, name: string): void {
  const target = targets.find((x) => x.name === name) as Target;
  t.test(`${target.name}: the valid record is accepted`, async (t) => {
    t.match(verdict(target, JSON.stringify(target.valid)), { ok: true });
  });

  t.test(`${target.name}: random text never throws, every rejection names the record`, async (t) => {
    const lower = target.name.toLowerCase();
    fc.assert(
      fc.property(anyText, (text) => {
        const v = verdict(target, text);
        if (!v.ok && !v.reason.includes(target.name) && !v.reason.toLowerCase().includes(lower) && !v.reason.includes('neither allocated')) {
          throw new Error(`reason does not name the ${target.name} record: ${v.reason}`);
        }
      }),
      { numRuns: RUNS },
    );
    t.pass(`${RUNS} inputs`);
  });

  t.test(`${target.name}: near-valid mutations never throw, a wrong field is named`, async (t) => {
    fc.assert(
      fc.property(mutationArb(target.fields), (m: Mutation) => {
        const text = mutate(target.valid, m);
        const v = verdict(target, text);
        if (v.ok || m.kind !== 'set') return;
        const named = spellings(m.field).some((s) => v.reason.includes(s));
        const shown = typeof m.value === 'string' && m.value.length > 0 && v.reason.includes(m.value.slice(0, 20));
        // A value of the wrong shape for a field the check compares (subnet, node...) is named by its value or field.
        if (!named && !shown && !/schemaVersion|names |outside|unknown subnet|no owner|neither allocated/.test(v.reason)) {
          throw new Error(`${target.name}.${m.field} = ${JSON.stringify(m.value)?.slice(0, 80)}: reason names neither: ${v.reason}`);
        }
      }),
      { numRuns: RUNS },
    );
    t.pass(`${RUNS} inputs`);
  });
}

