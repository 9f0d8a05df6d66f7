// `trellisctl bgp …`: BGP export.
//
//   plan --topology FILE --nodes FILE [--max-prefixes N] [--multipath N] [-o FMT]
//        offline (no etcd, no speaker): what the subnets' exporters announce
//        to a peer with that prefix limit (src/core/bgp-plan.ts)
//   status [--endpoint HOST:PORT] [-o FMT]   a trellisd's sessions, announced
//        prefixes and budget, from its HTTP endpoint (GET /bgp)
// The nodes file is that of `vpc plan` with "hostIP" (the next hop) in place
// of "instanceId"; its problems go to stderr, every one, and exit 1.

import { formatPrefix, parseAddress } from '../core/cidr.js';
import { planBgpRoutes, type BgpPlan } from '../core/bgp-plan.js';
import { describeError } from '../errors.js';
import { loadNodesFile, parseNodesFile } from './vpc-nodes-file.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliIO, type CommandGroup, type LeafCommand } from './command.js';
import { documentOutputOption, formatData, formatTable, isData, outputOption } from './output.js';
import { displayName, loadTopologyFile } from './topology-file.js';

function wholeNumber(io: CliIO, option: string, text: string, min: number): number | undefined {
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    io.stderr(`trellisctl: --${option} must be a whole number ≥ ${min}, got ${JSON.stringify(text)}\n`);
    return undefined;
  }
  return n;
}

/** The nodes file with hostIP read as the planner's forwarder id; problems speak of hostIP. */
function parseBgpNodes(text: string, topology: Parameters<typeof parseNodesFile>[1]): { ok: true; nodes: ReturnType<typeof toBgp> } | { ok: false; problems: string[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { ok: false, problems: [`not valid JSON: ${(err as Error).message}`] };
  }
  const problems: string[] = [];
  if (Array.isArray(doc)) {
    doc = doc.map((item: unknown, i) => {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) return item;
      const { hostIP, instanceId, ...rest } = item as Record<string, unknown>;
      if (instanceId !== undefined) problems.push(`[${i}].instanceId: unknown key (bgp plan takes "hostIP")`);
      if (typeof hostIP === 'string') {
        try {
          parseAddress(hostIP);
        } catch {
          problems.push(`[${i}].hostIP: ${JSON.stringify(hostIP)} is not an IP address`);
        }
      }
      return { ...rest, instanceId: hostIP };
    });
  }
  const parsed = parseNodesFile(JSON.stringify(doc), topology);
  if (!parsed.ok) problems.push(...parsed.problems.map((p) => p.replace(/\.instanceId/g, '.hostIP').replace(/instance id/g, 'host IP')));
  return problems.length > 0 || !parsed.ok ? { ok: false, problems } : { ok: true, nodes: toBgp(parsed.nodes) };
}

function toBgp(nodes: ReadonlyArray<{ name: string; subnet: string; instanceId: string; blocks: readonly import('../core/cidr.js').Prefix[]; healthy: boolean; draining?: boolean }>) {
  return nodes.map((n) => ({ name: n.name, subnet: n.subnet, hostIP: n.instanceId, blocks: n.blocks, healthy: n.healthy, draining: n.draining }));
}

export function bgpPlanToJSON(plan: BgpPlan): Record<string, unknown> {
  return {
    routes: plan.routes.map((r) => ({ prefix: formatPrefix(r.prefix), nextHops: r.nextHops, node: r.node, subnet: r.subnet })),
    maxPrefixes: plan.maxPrefixes,
    used: plan.clusterRoutes,
    shares: plan.shares,
    extraHopShare: plan.extraHopShare,
    uncovered: plan.uncovered.map((u) => ({ subnet: u.subnet, reason: u.reason, message: u.message })),
  };
}

function renderPlan(plan: BgpPlan): string {
  const rows = plan.routes.map((r) => [formatPrefix(r.prefix), r.nextHops.join(','), r.node, r.subnet]);
  const lines = rows.length === 0 ? ['(no prefixes: no node claims a block)'] : formatTable(['PREFIX', 'NEXT HOPS', 'NODE', 'SUBNET'], rows);
  const shares = Object.entries(plan.shares).map(([s, n]) => `${s} ${n}`).join(', ');
  lines.push('', `${plan.clusterRoutes} of ${plan.maxPrefixes} prefixes (${shares}); extra hop: ${(plan.extraHopShare * 100).toFixed(1)}% of claimed addresses`);
  for (const u of plan.uncovered) lines.push(`warning: ${u.message}`);
  return `${lines.join('\n')}\n`;
}

export const bgpPlanCommand: LeafCommand = {
  kind: 'command',
  name: 'plan',
  summary: 'plan the BGP announcements for a topology, a list of nodes and a peer limit (offline)',
  args: '',
  positionals: { min: 0, max: 0 },
  options: {
    topology: { type: 'string', valueName: 'FILE', doc: 'topology file (YAML or JSON; "-" reads standard input)' },
    nodes: { type: 'string', valueName: 'FILE', doc: 'nodes file: JSON array of {name, subnet, hostIP, blocks, healthy}' },
    'max-prefixes': { type: 'string', valueName: 'N', doc: "the peer's prefix limit, shared by every subnet", default: '100' },
    multipath: { type: 'string', valueName: 'N', doc: 'most next hops per prefix', default: '1' },
    output: documentOutputOption,
  },
  description:
    'Runs the BGP announcement planner offline (no etcd, no speaker): the VPC\n' +
    "route planner with the peer's limit as the budget of one table shared by\n" +
    'every subnet. Prints each prefix, its next hops (host IPs of healthy nodes\n' +
    'of its subnet, the planned forwarder first), the forwarding node and the\n' +
    'subnet. The nodes file is a JSON array of\n' +
    '  {"name": "n1", "subnet": "subnet-a", "hostIP": "198.18.1.10", "blocks": ["100.96.0.0/26"], "healthy": true}\n' +
    '("healthy" defaults to true; "draining": true marks a drained node). Exits 1\n' +
    'when a file is invalid.',
  examples: ['trellisctl bgp plan --topology topology.yaml --nodes nodes.json', 'trellisctl bgp plan --topology topology.yaml --nodes nodes.json --max-prefixes 3 -o json'],
  async run(inv, io) {
    const { topology: topoFile, nodes: nodesFile } = inv.options;
    if (typeof topoFile !== 'string' || typeof nodesFile !== 'string') {
      io.stderr('trellisctl: bgp plan needs --topology FILE and --nodes FILE\n');
      return EXIT_USAGE;
    }
    const maxPrefixes = wholeNumber(io, 'max-prefixes', String(inv.options['max-prefixes']), 1);
    const multipath = wholeNumber(io, 'multipath', String(inv.options.multipath), 1);
    if (maxPrefixes === undefined || multipath === undefined) return EXIT_USAGE;
    const topology = await loadTopologyFile(io, topoFile);
    if (typeof topology === 'number') return topology;
    const nodes = await loadNodesFile(io, nodesFile, (text) => parseBgpNodes(text, topology));
    if (typeof nodes === 'number') return nodes;
    let plan: BgpPlan;
    try {
      plan = planBgpRoutes({ topology, nodes, maxPrefixes, multipath });
    } catch (err) {
      io.stderr(`${displayName(nodesFile)}: ${describeError(err)}\n`);
      return EXIT_FAILURE;
    }
    io.stdout(isData(inv.options.output) ? formatData(inv.options.output, bgpPlanToJSON(plan)) : renderPlan(plan));
    return EXIT_OK;
  },
};

interface StatusDoc {
  node: string;
  subnet: string;
  mode: string;
  announcing: boolean;
  peers: Array<{
    address: string;
    asn: number;
    state: string;
    adminState: string;
    advertised: number;
    flops: number;
    maxPrefixes: number;
    multipath?: number;
    used?: number;
    routes?: Array<{ prefix: string; nextHops: string[] }>;
  }>;
  announced: Array<{ prefix: string; nextHop: string }>;
  budget: { used: number; maxPrefixes: number };
  uncovered: string[];
  lastError: string;
}

function renderStatus(s: StatusDoc): string {
  const out = [`node ${s.node} (${s.subnet}), mode ${s.mode}, ${s.announcing ? 'announcing' : 'not announcing (another node is the exporter of this subnet)'}`, ''];
  out.push(
    ...formatTable(
      ['PEER', 'AS', 'SESSION', 'ADVERTISED', 'USED', 'LIMIT', 'MULTIPATH', 'FLAPS'],
      s.peers.map((p) => [
        p.address,
        String(p.asn),
        p.adminState === 'pfx_ct' ? `${p.state} (prefix limit)` : p.state,
        String(p.advertised),
        p.used === undefined ? '-' : String(p.used),
        String(p.maxPrefixes),
        String(p.multipath ?? 1),
        String(p.flops),
      ]),
      { right: [3, 4, 5, 6, 7] },
    ),
  );
  const perPeer = s.peers.flatMap((p) => (p.routes ?? []).map((r) => [p.address, r.prefix, r.nextHops.join(',')]));
  if (perPeer.length > 0) out.push('', ...formatTable(['PEER', 'PREFIX', 'NEXT HOPS'], perPeer));
  else if (s.announced.length > 0) out.push('', ...formatTable(['PREFIX', 'NEXT HOP'], s.announced.map((a) => [a.prefix, a.nextHop])));
  out.push('', `USED: prefixes ${s.mode === 'exporter' ? 'the whole cluster sends' : 'this node sends'} the peer, within its LIMIT (each peer has its own plan)`);
  for (const u of s.uncovered) out.push(`warning: ${u}`);
  if (s.lastError !== '') out.push(`last error: ${s.lastError}`);
  return `${out.join('\n')}\n`;
}

export const bgpStatusCommand: LeafCommand = {
  kind: 'command',
  name: 'status',
  summary: "show a trellisd's BGP sessions, announced prefixes and budget used",
  args: '',
  positionals: { min: 0, max: 0 },
  options: {
    endpoint: { type: 'string', valueName: 'HOST:PORT', doc: "the trellisd's HTTP endpoint (http.listen)", default: '127.0.0.1:9653' },
    output: outputOption,
  },
  description:
    'Reads GET /bgp from a trellisd (this host\'s by default): its BGP mode,\n' +
    'whether it announces now (exporter mode: only the elected exporter of the\n' +
    'subnet does), every peer with its session state, prefixes advertised, the\n' +
    'prefixes the whole cluster sends it against its own limit, next hops per\n' +
    'prefix and flaps, the prefixes each peer is sent with their next hops,\n' +
    'subnets a peer cannot be told about, and the last error.\n' +
    'Exits 1 when the endpoint does not answer or BGP is off there.',
  examples: ['trellisctl bgp status', 'trellisctl bgp status --endpoint 198.18.1.10:9653 -o json'],
  async run(inv, io) {
    const endpoint = String(inv.options.endpoint);
    let doc: StatusDoc;
    try {
      const res = await fetch(`http://${endpoint}/bgp`, { signal: AbortSignal.timeout(5000) });
      if (res.status === 404) {
        io.stderr(`trellisctl: the trellisd at ${endpoint} does not run BGP (bgp.enabled is false)\n`);
        return EXIT_FAILURE;
      }
      doc = (await res.json()) as StatusDoc;
    } catch (err) {
      io.stderr(`trellisctl: cannot read http://${endpoint}/bgp: ${describeError(err)}\n`);
      return EXIT_FAILURE;
    }
    io.stdout(isData(inv.options.output) ? formatData(inv.options.output, doc) : renderStatus(doc));
    return EXIT_OK;
  },
};

export const bgpCommand: CommandGroup = {
  kind: 'group',
  name: 'bgp',
  summary: 'plan and inspect the BGP announcements of the pod network',
  description:
    'With bgp.enabled, trellisd drives a GoBGP speaker that announces the pod\n' +
    "network to routers: the subnet's elected exporter announces the subnet's\n" +
    "prefixes planned under the peer's prefix limit (exporter mode), or every\n" +
    'node announces its own blocks (tor mode). See docs/bgp.md.',
  commands: [bgpPlanCommand, bgpStatusCommand],
  examples: ['trellisctl bgp plan --topology topology.yaml --nodes nodes.json --max-prefixes 3', 'trellisctl bgp status'],
};
