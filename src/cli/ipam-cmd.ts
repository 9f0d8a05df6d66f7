// `trellisctl ipam`: every pod address in the shared tree, per node and block,
// from the block records in etcd (trellisd records an allocation there before
// it hands the address to the CNI plugin, so this is the authoritative list).
//
// Invariants: read-only; one consistent snapshot; blocks whose record
// trellisd ignores are listed with the reason, like `trellisctl blocks`.

import { comparePrefix, parseAddress, parsePrefix, size, type Prefix } from '../core/cidr.js';
import { timestampToIso } from '../state/records.js';
import type { LeafCommand } from './command.js';
import { etcdOptions } from './etcd-options.js';
import { isData, outputOption, toNumber } from './output.js';
import { ignoredReason, table, withSnapshot } from './state-cmd.js';

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
    'Lists every address allocated to a pod, per node and block, as the block\n' +
    'records in etcd hold them: address, container id, interface, CNI network,\n' +
    'pod (namespace/name when the runtime passed them) and when it was\n' +
    'allocated. The table shortens 64-digit container ids to 12; -o wide gives\n' +
    'them whole and adds the network namespace; -o json (or yaml) gives them\n' +
    'whole, grouped as [{node, blocks: [{prefix, size, allocations: [...]}]}].',
  examples: ['trellisctl ipam', 'trellisctl ipam --node node-a -o json', 'trellisctl ipam --container 3f2a9c'],
  run: (inv, io) =>
    withSnapshot(inv, io, (s) => {
      const node = inv.options.node as string | undefined;
      const container = inv.options.container as string | undefined;
      const valid = s.view?.blocks();
      const nodes = new Map<string, BlockRow[]>();
      const sorted = [...s.blockRecords.values()].sort((a, b) => a.node.localeCompare(b.node) || byPrefix(a.prefix, b.prefix));
      for (const b of sorted) {
        if (node !== undefined && b.node !== node) continue;
        const allocations = Object.entries(b.allocations)
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
        const ok = valid?.has(b.prefix) ?? false;
        const row: BlockRow = {
          prefix: b.prefix,
          subnet: b.subnet,
          size: total,
          resting: Object.keys(b.released).length,
          valid: ok,
          ...(ok ? {} : { problem: ignoredReason(s, s.keys.block(b.prefix)) ?? 'invalid record' }),
          allocations,
        };
        nodes.set(b.node, [...(nodes.get(b.node) ?? []), row]);
      }
      if (isData(inv.options.output)) return [...nodes].map(([name, blocks]) => ({ node: name, blocks }));
      const wide = inv.options.output === 'wide';
      const rows: string[][] = [];
      for (const [name, blocks] of nodes) {
        for (const b of blocks) {
          const status = b.valid ? '' : `  (ignored by trellisd: ${b.problem})`;
          if (b.allocations.length === 0 && container === undefined) {
            rows.push([name, b.prefix, '-', '-', '-', '-', '-', ...(wide ? ['-'] : []), `none of ${b.size ?? '?'} in use${status}`]);
          }
          for (const a of b.allocations) {
            const pod = a.podName === '' ? '-' : `${a.podNamespace === '' ? '' : `${a.podNamespace}/`}${a.podName}`;
            const id = wide ? a.containerId : shortId(a.containerId);
            rows.push([name, b.prefix, a.address, id, a.ifName, a.network || '-', pod, ...(wide ? [a.netns || '-'] : []), `${a.allocatedAt || '-'}${status}`]);
          }
        }
      }
      return table(['NODE', 'BLOCK', 'ADDRESS', 'CONTAINER', 'IFNAME', 'NETWORK', 'POD', ...(wide ? ['NETNS'] : []), 'ALLOCATED'], rows);
    }),
};
