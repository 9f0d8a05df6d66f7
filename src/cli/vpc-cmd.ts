// `trellisctl vpc …`: the VPC route tables.
//
//   plan --topology FILE --nodes FILE [--limit N] [--reserved N] [-o FMT]
//        offline (no etcd, no AWS): the entries the planner gives every route
//        table of the topology for the nodes in FILE
//   status [-o FMT]   what each subnet's elected advertiser last planned,
//        found and judged, from <prefix>/v1/vpc/* in etcd
// Problems with the input files go to stderr (`FILE: PATH: message`, every
// one of them) and exit 1.

import { formatPrefix } from '../core/cidr.js';
import { routeTables } from '../core/topology.js';
import { planVpcRoutes, type Plan } from '../core/vpc-plan.js';
import { describeError } from '../errors.js';
import { loadNodesFile, parseNodesFile } from './vpc-nodes-file.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliIO, type CommandGroup, type LeafCommand } from './command.js';
import { documentOutputOption, formatData, formatTable, isData, outputOption } from './output.js';
import { displayName, loadTopologyFile } from './topology-file.js';
import { etcdOptions, openEtcd } from './etcd-options.js';
import { Keys } from '../state/keys.js';
import { readPrefix } from '../etcd/paged-range.js';
import { VpcStatusSchema } from '../gen/trellis/v1/records_pb.js';
import { decodeRecord, timestampToIso } from '../state/records.js';

function wholeNumber(io: CliIO, option: string, text: string, min: number, max?: number, hint = ''): number | undefined {
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    io.stderr(`trellisctl: --${option} must be a whole number ≥ ${min}, got ${JSON.stringify(text)}\n`);
    return undefined;
  }
  if (max !== undefined && n > max) {
    io.stderr(`trellisctl: --${option} must be at most ${max}, got ${n}${hint === '' ? '' : ` (${hint})`}\n`);
    return undefined;
  }
  return n;
}

export function planToJSON(plan: Plan): Record<string, unknown> {
  return {
    routes: plan.entries.map((e) => ({ table: e.table, destination: formatPrefix(e.destination), target: e.target, node: e.node, subnet: e.subnet })),
    extraHopShare: plan.extraHopShare,
    budgetExceeded: plan.budgetExceeded,
    tables: plan.perTable.map((t) => ({ table: t.table, budget: t.budget, used: t.used, shares: t.shares })),
    uncovered: plan.uncovered.map((u) => ({ subnet: u.subnet, ...(u.table === undefined ? {} : { table: u.table }), reason: u.reason, message: u.message })),
    drainKept: plan.drainKept.map((d) => ({ subnet: d.subnet, nodes: d.nodes, message: d.message })),
  };
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

export function renderPlanTable(plan: Plan, limit: number, reserved: number): string {
  const rows = plan.entries.map((e) => [e.table, formatPrefix(e.destination), e.target, e.node, e.subnet]);
  const lines = rows.length === 0 ? ['(no entries: no node claims a block)'] : formatTable(['TABLE', 'DESTINATION', 'TARGET', 'NODE', 'SUBNET'], rows);
  const budget = Math.max(0, limit - reserved);
  lines.push(
    '',
    `${plan.entries.length} entries in ${plan.perTable.length} route table${plan.perTable.length === 1 ? '' : 's'} ` +
      `(limit ${limit}, reserved ${reserved}: ${budget} per table); extra hop: ${percent(plan.extraHopShare)} of claimed addresses`,
  );
  for (const t of plan.perTable) {
    const shares = Object.entries(t.shares).map(([s, n]) => `${s} ${n}`).join(', ');
    lines.push(`  ${t.table}: ${t.used} of ${t.budget} used (${shares})`);
  }
  for (const u of plan.uncovered) lines.push(`warning: ${u.message}`);
  for (const d of plan.drainKept) lines.push(`warning: ${d.message}`);
  return `${lines.join('\n')}\n`;
}

export const vpcPlanCommand: LeafCommand = {
  kind: 'command',
  name: 'plan',
  summary: 'plan the VPC route-table entries for a topology and a list of nodes (offline)',
  args: '',
  positionals: { min: 0, max: 0 },
  options: {
    topology: { type: 'string', valueName: 'FILE', doc: 'topology file (YAML or JSON; "-" reads standard input)' },
    nodes: { type: 'string', valueName: 'FILE', doc: 'nodes file: JSON array of {name, subnet, instanceId, blocks, healthy}' },
    limit: { type: 'string', valueName: 'N', doc: 'routes each route table may hold (the AWS quota: 500 by default, at most 1000)', default: '500' },
    reserved: { type: 'string', valueName: 'N', doc: 'routes in each table that Trellis does not own (local, gateways…)', default: '0' },
    output: documentOutputOption,
  },
  description:
    'Runs the VPC route planner offline (no etcd, no AWS) and prints the entries\n' +
    'every route table named in the topology ("main" when a subnet names none)\n' +
    'gets: destination prefix, target instance, forwarding node and subnet.\n' +
    'The budget of a table is --limit minus --reserved; when it is smaller than\n' +
    'the number of nodes, blocks are aggregated and spread over forwarders.\n' +
    'The nodes file is a JSON array of\n' +
    '  {"name": "n1", "subnet": "subnet-a", "instanceId": "i-0abc", "blocks": ["100.96.0.0/26"], "healthy": true}\n' +
    '("healthy" defaults to true; "draining": true marks a drained node, which\n' +
    'forwards for nobody while its subnet has another healthy host). "-o json" prints {"routes": [{"table",\n' +
    '"destination", "target", "node", "subnet"}], "extraHopShare": F, ...}, where\n' +
    'extraHopShare is the fraction of claimed addresses whose entry targets\n' +
    'another host (in the worst table). Exits 1 when a file is invalid.',
  examples: ['trellisctl vpc plan --topology topology.yaml --nodes nodes.json', 'trellisctl vpc plan --topology topology.yaml --nodes nodes.json --limit 8 --reserved 2 -o json'],
  async run(inv, io) {
    const { topology: topoFile, nodes: nodesFile } = inv.options;
    if (typeof topoFile !== 'string' || typeof nodesFile !== 'string') {
      io.stderr(`trellisctl: vpc plan needs --topology FILE and --nodes FILE\n`);
      return EXIT_USAGE;
    }
    const limit = wholeNumber(io, 'limit', String(inv.options.limit), 1, 1000, 'AWS allows at most 1000 routes per route table');
    const reserved = wholeNumber(io, 'reserved', String(inv.options.reserved), 0);
    if (limit === undefined || reserved === undefined) return EXIT_USAGE;
    const topology = await loadTopologyFile(io, topoFile);
    if (typeof topology === 'number') return topology;
    const nodes = await loadNodesFile(io, nodesFile, (text) => parseNodesFile(text, topology));
    if (typeof nodes === 'number') return nodes;
    let plan: Plan;
    try {
      plan = planVpcRoutes({ topology, nodes, tables: routeTables(topology).map((id) => ({ id, limit, foreign: reserved })) });
    } catch (err) {
      io.stderr(`${displayName(nodesFile)}: ${describeError(err)}\n`);
      return EXIT_FAILURE;
    }
    io.stdout(isData(inv.options.output) ? formatData(inv.options.output, planToJSON(plan)) : renderPlanTable(plan, limit, reserved));
    return EXIT_OK;
  },
};

interface SubnetStatus {
  subnet: string;
  leader: string;
  electedLeader: string;
  candidates: number;
  updatedAt: string;
  entries: Array<{ table: string; destination: string; target: string; node: string }>;
  plan: Array<{ table: string; destination: string; target: string; node: string }>;
  forwarders: Array<{ node: string; instanceId: string; healthy: boolean; consecutiveMisses: number; changedAt: string }>;
  lastError: string;
  budgetExceeded: boolean;
  extraHopShare: number;
  warnings: string[];
  problem?: string;
}

/** Status records and election candidates, read in pages at one revision (advertisers/, then vpc/). */
async function readStatuses(inv: { options: Record<string, string | boolean | undefined> }): Promise<SubnetStatus[]> {
  const session = await openEtcd(inv.options);
  try {
    const { client, keys } = session;
    const advertisers = await readPrefix(client, `${keys.root}/advertisers/`);
    const statuses = await readPrefix(client, keys.vpcPrefix(), { revision: advertisers.revision, maxValueBytes: Number.MAX_SAFE_INTEGER });
    const candidates = new Map<string, Array<{ node: string; rev: bigint }>>();
    const records = new Map<string, string>();
    for (const kv of [...advertisers.kvs, ...statuses.kvs]) {
      const key = kv.key.toString();
      const parts = key.slice(keys.root.length + 1).split('/');
      if (parts[0] === 'advertisers' && parts.length === 3 && parts[1]) {
        candidates.set(parts[1], [...(candidates.get(parts[1]) ?? []), { node: kv.value.toString(), rev: BigInt(kv.create_revision) }]);
      } else if (key.startsWith(keys.vpcPrefix()) && parts.length === 2) {
        records.set(Keys.leaf(key), kv.value.toString());
      }
    }
    const subnets = [...new Set([...records.keys(), ...candidates.keys()])].sort();
    return subnets.map((subnet) => {
      const cands = (candidates.get(subnet) ?? []).sort((a, b) => (a.rev < b.rev ? -1 : a.rev > b.rev ? 1 : 0));
      const base: SubnetStatus = {
        subnet, leader: '', electedLeader: cands[0]?.node ?? '', candidates: cands.length, updatedAt: '', entries: [], plan: [], forwarders: [],
        lastError: '', budgetExceeded: false, extraHopShare: 0, warnings: [],
      };
      const text = records.get(subnet);
      if (text === undefined) return { ...base, problem: 'no status written yet' };
      const decoded = decodeRecord(VpcStatusSchema, text);
      if (!decoded.ok) return { ...base, problem: decoded.reason };
      const s = decoded.value;
      const route = (r: { table: string; destination: string; target: string; node: string }) => ({ table: r.table, destination: r.destination, target: r.target, node: r.node });
      return {
        ...base,
        leader: s.leader,
        updatedAt: timestampToIso(s.updatedAt),
        entries: s.applied.map(route),
        plan: s.plan.map(route),
        forwarders: s.forwarders.map((f) => ({ node: f.node, instanceId: f.instanceId, healthy: f.healthy, consecutiveMisses: f.consecutiveMisses, changedAt: timestampToIso(f.changedAt) })),
        lastError: s.lastError,
        budgetExceeded: s.budgetExceeded,
        extraHopShare: s.extraHopShare,
        warnings: [...s.warnings],
      };
    });
  } finally {
    session.close();
  }
}

function renderStatusTable(list: readonly SubnetStatus[], wide: boolean): string {
  if (list.length === 0) return '(no VPC advertiser status in etcd: no trellisd runs with vpc.enabled)\n';
  const out = formatTable(
    ['SUBNET', 'LEADER', 'ELECTED', 'CANDIDATES', 'ENTRIES', ...(wide ? ['PLANNED', 'BUDGET'] : []), 'FORWARDERS', 'EXTRA HOP', 'UPDATED', 'LAST ERROR'],
    list.map((s) => [
      s.subnet, s.leader || '-', s.electedLeader || '-', String(s.candidates), String(s.entries.length),
      ...(wide ? [String(s.plan.length), s.budgetExceeded ? 'exceeded' : 'ok'] : []),
      `${s.forwarders.filter((f) => f.healthy).length}/${s.forwarders.length} healthy`, percent(s.extraHopShare), s.updatedAt || '-',
      s.problem ?? (s.lastError || 'none'),
    ]),
    { right: wide ? [3, 4, 5] : [3, 4] },
  );
  const entries = list.flatMap((s) => s.entries.map((e) => [s.subnet, e.table, e.destination, e.target, e.node || '-']));
  if (entries.length > 0) out.push('', ...formatTable(['SUBNET', 'TABLE', 'DESTINATION', 'TARGET', 'NODE'], entries));
  const fw = list.flatMap((s) => s.forwarders.map((f) => [s.subnet, f.node, f.instanceId || '-', f.healthy ? 'healthy' : 'failed', String(f.consecutiveMisses), f.changedAt || '-']));
  if (fw.length > 0) out.push('', ...formatTable(['SUBNET', 'FORWARDER', 'INSTANCE', 'HEALTH', 'MISSES', 'SINCE'], fw, { right: [4] }));
  for (const s of list) {
    if (s.budgetExceeded) out.push(`warning: ${s.subnet}: the route-table budget cannot give every subnet an entry`);
    for (const w of s.warnings) out.push(`warning: ${s.subnet}: ${w}`);
  }
  return `${out.join('\n')}\n`;
}

export const vpcStatusCommand: LeafCommand = {
  kind: 'command',
  name: 'status',
  summary: "show each subnet's VPC advertiser: leader, entries, forwarder health, last error",
  args: '',
  positionals: { min: 0, max: 0 },
  options: { output: outputOption, ...etcdOptions },
  description:
    'Reads the status each subnet\'s elected VPC advertiser writes to etcd\n' +
    '(<prefix>/v1/vpc/<subnet>) and the current election candidates\n' +
    '(<prefix>/v1/advertisers/<subnet>/): the leader that wrote the status and\n' +
    'the one elected now, the entries found in the route tables after its last\n' +
    'pass, the health of every forwarder of the subnet, the last error and any\n' +
    'warnings (budget exceeded, routes in the pod network Trellis did not make).',
  examples: ['trellisctl vpc status', 'trellisctl vpc status -o json --etcd-endpoints http://198.18.0.2:2379'],
  async run(inv, io) {
    const list = await readStatuses(inv);
    io.stdout(isData(inv.options.output) ? formatData(inv.options.output, list) : renderStatusTable(list, inv.options.output === 'wide'));
    return EXIT_OK;
  },
};

export const vpcCommand: CommandGroup = {
  kind: 'group',
  name: 'vpc',
  summary: 'plan and inspect the VPC route-table entries',
  description:
    "Trellis keeps each subnet's pod routes in the VPC route tables: one entry per\n" +
    'node while the table has room, aggregated entries spread over healthy\n' +
    "forwarders when it does not. Each subnet's entries are kept by the subnet's\n" +
    'elected advertiser (a trellisd with vpc.enabled).',
  commands: [vpcPlanCommand, vpcStatusCommand],
  examples: ['trellisctl vpc plan --topology topology.yaml --nodes nodes.json --limit 8', 'trellisctl vpc status'],
};
