// `trellisctl ipam`: every pod address in the shared tree, per node and block,
// from the PodAddress records under <prefix>/v1/ipam/<node>/ (trellisd writes
// an allocation there before it hands the address to the CNI plugin, so this
// is the authoritative list), plus the allocations still inside the Block
// records of nodes that run a release of the old layout.
//
// Invariants: read-only; one consistent snapshot (every read at one etcd
// revision, paged); with --node only that node's range is read; blocks whose
// record trellisd ignores are listed with the reason, like `trellisctl blocks`;
// address records outside any claim of their node are listed as such.

import { comparePrefix, parseAddress, parsePrefix, size, type Prefix } from '../core/cidr.js';
import { readPrefix } from '../etcd/paged-range.js';
import { PodAddressSchema, type Allocation, type Block } from '../gen/trellis/v1/records_pb.js';
import { decodeRecord, timestampToIso } from '../state/records.js';
import { EXIT_FAILURE, EXIT_OK, type LeafCommand } from './command.js';
import { readSnapshot, type Snapshot } from './cluster-read.js';
import { etcdOptions, openEtcd, type EtcdSession } from './etcd-options.js';
import { formatData, isData, outputOption, toNumber } from './output.js';
import { ignoredReason, table } from './state-cmd.js';

interface AllocationRow {
  address: string;
  containerId: string;
  ifName: string;
  network: string;
  netns: string;
  podNamespace: string;
  podName: string;
  allocatedAt: string;
}

interface BlockRow {
  prefix: string;
  subnet: string;
  /** Addresses in the block; null when the prefix does not parse. */
  size: number | string | null;
  /** Released addresses still resting before reuse. */
  resting: number;
  valid: boolean;
  problem?: string;
  allocations: AllocationRow[];
}

/** Container ids are often 64 hex digits: the table shows 12, as container tools do. */
function shortId(id: string): string {
  return id.length > 16 ? id.slice(0, 12) : id;
}

/** Orders address or prefix texts numerically; text that does not parse sorts by its characters, after. */
function numerically(parse: (text: string) => Prefix): (a: string, b: string) => number {
  const key = (text: string): Prefix | undefined => {
    try {
      return parse(text);
    } catch {
      return undefined;
    }
  };
  return (a: string, b: string): number => {
    const [x, y] = [key(a), key(b)];
    if (x !== undefined && y !== undefined) return comparePrefix(x, y);
    if (x !== undefined || y !== undefined) return x !== undefined ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  };
}

const byAddress = numerically((text) => {
  const a = parseAddress(text);
  return { ...a, len: a.family === 4 ? 32 : 128 };
});
const byPrefix = numerically(parsePrefix);

export const ipamCommand: LeafCommand = {
  kind: 'command',
  name: 'ipam',
  summary: 'list pod address allocations per node and block',
  args: '',
  positionals: { min: 0, max: 0 },
  options: {
    output: outputOption,
    node: { type: 'string', valueName: 'NODE', doc: 'only this node' },
    container: { type: 'string', valueName: 'ID', doc: 'only allocations of this container id (or a prefix of it)' },
    ...etcdOptions,
  },
  description:
    'Lists every address allocated to a pod, per node and block, as the\n' +
    'address records in etcd hold them (and the block records of nodes still\n' +
    'on the old layout): address, container id, interface, CNI network, pod\n' +
    '(namespace/name when the runtime passed them) and when it was allocated.\n' +
    'With --node only that node\'s records are read. The table shortens\n' +
    '64-digit container ids to 12; -o wide gives them whole and adds the\n' +
    'network namespace; -o json (or yaml) gives them whole, grouped as\n' +
    '[{node, blocks: [{prefix, size, allocations: [...]}]}].',
  examples: ['trellisctl ipam', 'trellisctl ipam --node node-a -o json', 'trellisctl ipam --container 3f2a9c'],
  run: async (inv, io) => {
    const session = await openEtcd(inv.options);
    try {
      const node = inv.options.node as string | undefined;
      const snapshot = await readSnapshot(session);
      if (snapshot.topologyProblem !== undefined) io.stderr(`trellisctl: warning: ${snapshot.topologyProblem}\n`);
      const records = await readAddresses(session, snapshot.revision, node);
      const out = show(snapshot, records, node, inv.options.container as string | undefined, inv.options.output);
      io.stdout(typeof out === 'string' ? out : formatData(inv.options.output, out));
      return snapshot.topology === undefined ? EXIT_FAILURE : EXIT_OK;
    } finally {
      session.close();
    }
  },
};

interface StoredAddress {
  node: string;
  block: string;
  address: string;
  allocation?: Allocation;
}

/** The PodAddress records of one node (or of all), at the snapshot's revision, in pages. */
async function readAddresses(session: EtcdSession, revision: string, node: string | undefined): Promise<StoredAddress[]> {
  const prefix = node === undefined ? `${session.keys.root}/ipam/` : session.keys.ipamPrefix(node);
  const out: StoredAddress[] = [];
  for (const kv of (await readPrefix(session.client, prefix, { revision })).kvs) {
    const decoded = decodeRecord(PodAddressSchema, kv.value.toString());
    if (!decoded.ok) continue;
    const r = decoded.value;
    out.push({ node: r.node, block: r.block, address: r.address, ...(r.allocation !== undefined ? { allocation: r.allocation } : {}) });
  }
  return out;
}

function show(s: Snapshot, records: readonly StoredAddress[], node: string | undefined, container: string | undefined, output: unknown): unknown[] | string {
  const valid = s.view?.blocks();
  const byBlock = new Map<string, StoredAddress[]>();
  for (const r of records) byBlock.set(`${r.node}|${r.block}`, [...(byBlock.get(`${r.node}|${r.block}`) ?? []), r]);
  const claims: Block[] = [...s.blockRecords.values()];
  // Address records of a node in a block it does not claim (left over, or written over a claim of another node).
  const claimed = new Set(claims.map((b) => `${b.node}|${b.prefix}`));
  const orphans = [...byBlock.keys()].filter((k) => !claimed.has(k));
  const nodes = new Map<string, BlockRow[]>();
  const rows: Array<{ node: string; prefix: string; subnet: string; valid: boolean; problem?: string; held: Array<[string, Allocation]>; resting: number }> = [];
  for (const b of claims) {
    if (node !== undefined && b.node !== node) continue;
    const mine = byBlock.get(`${b.node}|${b.prefix}`) ?? [];
    const held = new Map<string, Allocation>(Object.entries(b.allocations)); // old layout
    let resting = Object.keys(b.released).filter((a) => !(a in b.allocations)).length;
    for (const r of mine) {
      if (r.allocation !== undefined) held.set(r.address, r.allocation);
      else resting++;
    }
    const ok = valid?.has(b.prefix) ?? false;
    rows.push({ node: b.node, prefix: b.prefix, subnet: b.subnet, valid: ok, ...(ok ? {} : { problem: ignoredReason(s, s.keys.block(b.prefix)) ?? 'invalid record' }), held: [...held], resting });
  }
  for (const k of orphans) {
    const list = byBlock.get(k) as StoredAddress[];
    const [owner, prefix] = [list[0]!.node, list[0]!.block];
    const held = list.filter((r) => r.allocation !== undefined).map((r): [string, Allocation] => [r.address, r.allocation as Allocation]);
    rows.push({ node: owner, prefix, subnet: '', valid: false, problem: `no claim of ${owner} holds this block`, held, resting: list.length - held.length });
  }
  rows.sort((a, b) => a.node.localeCompare(b.node) || byPrefix(a.prefix, b.prefix));
  for (const b of rows) {
    const allocations = b.held
      .filter(([, a]) => container === undefined || a.containerId.startsWith(container))
      .sort(([x], [y]) => byAddress(x, y))
      .map(([address, a]) => ({
        address,
        containerId: a.containerId,
        ifName: a.ifName,
        network: a.network,
        netns: a.netns,
        podNamespace: a.podNamespace,
        podName: a.podName,
        allocatedAt: timestampToIso(a.allocatedAt),
      }));
    if (container !== undefined && allocations.length === 0) continue;
    let total: number | string | null = null;
    try {
      total = toNumber(size(parsePrefix(b.prefix)));
    } catch {
      // an unparsable prefix: the record is listed as ignored below
    }
    const row: BlockRow = {
      prefix: b.prefix,
      subnet: b.subnet,
      size: total,
      resting: b.resting,
      valid: b.valid,
      ...(b.problem === undefined ? {} : { problem: b.problem }),
      allocations,
    };
    nodes.set(b.node, [...(nodes.get(b.node) ?? []), row]);
  }
  if (isData(output)) return [...nodes].map(([name, blocks]) => ({ node: name, blocks }));
  const wide = output === 'wide';
  const lines: string[][] = [];
  for (const [name, blocks] of nodes) {
    for (const b of blocks) {
      const status = b.valid ? '' : `  (ignored by trellisd: ${b.problem})`;
      if (b.allocations.length === 0 && container === undefined) {
        lines.push([name, b.prefix, '-', '-', '-', '-', '-', ...(wide ? ['-'] : []), `none of ${b.size ?? '?'} in use${status}`]);
      }
      for (const a of b.allocations) {
        const pod = a.podName === '' ? '-' : `${a.podNamespace === '' ? '' : `${a.podNamespace}/`}${a.podName}`;
        const id = wide ? a.containerId : shortId(a.containerId);
        lines.push([name, b.prefix, a.address, id, a.ifName, a.network || '-', pod, ...(wide ? [a.netns || '-'] : []), `${a.allocatedAt || '-'}${status}`]);
      }
    }
  }
  return table(['NODE', 'BLOCK', 'ADDRESS', 'CONTAINER', 'IFNAME', 'NETWORK', 'POD', ...(wide ? ['NETNS'] : []), 'ALLOCATED'], lines);
}
