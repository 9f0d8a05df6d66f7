// Renderings of a resolved topology for trellisctl: JSON for programs and an
// aligned table for people.
//
// The JSON form is stable: network, blockSize, nodeHomeSize, subnetSize, then
// zones[] of { name, subnets[] of { id, cidr, podPrefix, podPrefixExplicit,
// routeTable } }. routeTable is omitted when the subnet names none; prefixes
// are canonical text.

import { formatPrefix, size } from '../core/cidr.js';
import { allSubnets, type Subnet, type Topology } from '../core/topology.js';
import { formatTable } from './output.js';

export interface SubnetJSON {
  id: string;
  cidr: string;
  podPrefix: string;
  podPrefixExplicit: boolean;
  routeTable?: string;
}

export interface TopologyJSON {
  network: string;
  blockSize: number;
  nodeHomeSize: number;
  subnetSize: number;
  zones: Array<{ name: string; subnets: SubnetJSON[] }>;
}

function subnetJSON(s: Subnet): SubnetJSON {
  const out: SubnetJSON = {
    id: s.id,
    cidr: formatPrefix(s.cidr),
    podPrefix: formatPrefix(s.podPrefix),
    podPrefixExplicit: s.podPrefixExplicit,
  };
  if (s.routeTable !== undefined) out.routeTable = s.routeTable;
  return out;
}

export function topologyToJSON(t: Topology): TopologyJSON {
  return {
    network: formatPrefix(t.network),
    blockSize: t.blockSize,
    nodeHomeSize: t.nodeHomeSize,
    subnetSize: t.subnetSize,
    zones: t.zones.map((z) => ({ name: z.name, subnets: z.subnets.map(subnetJSON) })),
  };
}

/** Number of blocks of the topology's block size in `s`'s pod prefix. */
export function blocksIn(t: Topology, s: Subnet): bigint {
  return 1n << BigInt(t.blockSize - s.podPrefix.len);
}

function plural(n: number | bigint, word: string): string {
  return `${n} ${word}${n === 1 || n === 1n ? '' : 's'}`;
}

/** The table rendering: a settings line, one row per subnet, a totals line. */
export function renderTopologyTable(t: Topology): string {
  const subnets = allSubnets(t);
  const rows = subnets.map((s) => [
    s.zone,
    s.id,
    formatPrefix(s.cidr),
    `${formatPrefix(s.podPrefix)}${s.podPrefixExplicit ? '' : ' (carved)'}`,
    s.routeTable ?? '-',
    String(blocksIn(t, s)),
  ]);
  const table = formatTable(['ZONE', 'SUBNET', 'HOST CIDR', 'POD PREFIX', 'ROUTE TABLE', `/${t.blockSize} BLOCKS`], rows, {
    right: [5],
  });
  const blockSpan = size({ family: t.network.family, addr: 0n, len: t.blockSize });
  const total = size(t.network) / blockSpan;
  const used = subnets.reduce((sum, s) => sum + blocksIn(t, s), 0n);
  const carved = subnets.filter((s) => !s.podPrefixExplicit).length;
  const settings =
    `network ${formatPrefix(t.network)}  blockSize /${t.blockSize}  nodeHomeSize /${t.nodeHomeSize}` +
    `  subnetSize /${t.subnetSize}`;
  const summary =
    `${plural(subnets.length, 'subnet')} in ${plural(t.zones.length, 'zone')} ` +
    `(${carved} carved, ${subnets.length - carved} explicit); ` +
    `${used} of the network's ${plural(total, `/${t.blockSize} block`)} are in subnet pod prefixes`;
  return `${settings}\n\n${table.join('\n')}\n\n${summary}\n`;
}
