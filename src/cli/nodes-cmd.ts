// `trellisctl nodes [--watch]`: every node the cluster knows of and its life
// cycle state, read from one consistent snapshot of etcd:
//   live   a lease holds its node record (valid or not)
//   draining  live, and an operator drained it (`trellisctl node drain`:
//          <prefix>/v1/drain/<node>); a dead node keeps "dead" and shows the
//          drain in its row
//   dead   no node record, but block claims still name it (its blocks stay
//          unusable until it comes back or is removed: `trellisctl node remove`)
//   collected  (--watch only) a dead node that left the list: its blocks were
//          given back (by the cluster's node collector or a removal)
// Rows are sorted by name. --watch prints the list, then one line per change
// of a node's state or blocks (JSON lines with -o json/yaml) until interrupted.

import { comparePrefix, formatAddress, formatPrefix } from '../core/cidr.js';
import { hex } from '../etcd/lease-keeper.js';
import { Keys } from '../state/keys.js';
import type { BlockInfo, NodeInfo } from '../state/validate.js';
import { EXIT_FAILURE, EXIT_OK, type CliIO, type Invocation, type LeafCommand } from './command.js';
import { readSnapshot, type Snapshot } from './cluster-read.js';
import { etcdOptions, openEtcd, type EtcdSession } from './etcd-options.js';
import { isData, outputOption } from './output.js';
import { allOption, byText, ignoredOption, ignoredReason, onlyIgnored, table, withSnapshot } from './state-cmd.js';

export type NodeState = 'live' | 'draining' | 'dead';

export interface NodeRow {
  name: string;
  state: NodeState;
  subnet: string;
  zone: string;
  hostIP: string;
  instanceId: string;
  lease: string;
  healthEndpoint: string;
  blocks: string[];
  valid: boolean;
  problem?: string;
  /** The node's drain record, when an operator drained it. */
  drain?: { since: string; by: string; reason: string };
}

/** One row per node: those with a record (live), then those only block claims name (dead). */
export function nodeRows(s: Snapshot): NodeRow[] {
  const keys = s.keys;
  const valid = s.view?.nodes() ?? new Map<string, NodeInfo>();
  const byNode = s.view?.blocksByNode() ?? new Map<string, BlockInfo[]>();
  const blocksOf = (name: string): BlockInfo[] => [...(byNode.get(name) ?? [])].sort((a, b) => comparePrefix(a.prefix, b.prefix));
  const recorded = s.recordKeys.filter((k) => k.startsWith(keys.nodesPrefix()));
  const drainOf = (name: string): Pick<NodeRow, 'drain'> => {
    const d = s.drains.get(name);
    return d === undefined ? {} : { drain: { since: d.since, by: d.by, reason: d.reason } };
  };
  const rows: NodeRow[] = recorded.map((key) => {
    const name = Keys.leaf(key);
    const n = valid.get(name);
    return {
      name,
      state: s.drains.has(name) ? 'draining' : 'live',
      subnet: n?.subnet.id ?? '',
      zone: n?.subnet.zone ?? '',
      hostIP: n === undefined ? '' : formatAddress(n.hostIP),
      instanceId: n?.instanceId ?? '',
      lease: s.leases.has(key) ? hex(s.leases.get(key) as string) : '-',
      healthEndpoint: n?.healthEndpoint ?? '',
      blocks: blocksOf(name).map((b) => formatPrefix(b.prefix)),
      valid: n !== undefined,
      ...(n === undefined ? { problem: ignoredReason(s, key) ?? 'invalid record' } : {}),
      ...drainOf(name),
    };
  });
  const named = new Set(recorded.map((k) => Keys.leaf(k)));
  for (const name of byNode.keys()) {
    if (named.has(name)) continue;
    const blocks = blocksOf(name);
    const subnet = blocks[0]?.subnet;
    rows.push({
      name, state: 'dead', subnet: subnet?.id ?? '', zone: subnet?.zone ?? '', hostIP: '', instanceId: '', lease: '-', healthEndpoint: '',
      blocks: blocks.map((b) => formatPrefix(b.prefix)), valid: true, ...drainOf(name),
    });
  }
  return rows.sort((a, b) => byText(a.name, b.name));
}

function render(inv: Invocation, rows: NodeRow[]): unknown[] | string {
  if (isData(inv.options.output)) return onlyIgnored(inv, rows);
  const wide = inv.options.output === 'wide';
  return table(
    ['NODE', 'STATE', 'SUBNET', 'ZONE', 'HOST IP', 'INSTANCE', 'LEASE', ...(wide ? ['HEALTH ENDPOINT', '#BLOCKS'] : []), 'BLOCKS', 'STATUS'],
    onlyIgnored(inv, rows).map((r) => [
      r.name, r.state === 'dead' && r.drain !== undefined ? 'dead (drained)' : r.state, r.subnet || '-', r.zone || '-', r.hostIP || '-', r.instanceId || '-', r.lease,
      ...(wide ? [r.healthEndpoint || '-', String(r.blocks.length)] : []),
      r.blocks.join(' ') || '-', r.valid ? 'ok' : `ignored: ${r.problem}`,
    ]),
    wide ? [8] : [],
  );
}

/** A node no longer listed: "collected" when it was dead (its blocks given back by the collector or a removal), else "gone". */
const left = (before: NodeRow | undefined): string => (before?.state === 'dead' ? 'collected' : 'gone');

/** What a watch line tells of one node: its state and blocks, or that it left the list (`left`). */
const summary = (r: NodeRow | undefined, before?: NodeRow): string => (r === undefined ? left(before) : `${r.state}${r.blocks.length > 0 ? ` (${r.blocks.join(' ')})` : ''}`);

/** The change lines between two listings, by node name. */
export function changeLines(before: readonly NodeRow[], after: readonly NodeRow[], at: Date, data: boolean): string[] {
  const old = new Map(before.map((r) => [r.name, r]));
  const now = new Map(after.map((r) => [r.name, r]));
  const out: string[] = [];
  for (const name of [...new Set([...old.keys(), ...now.keys()])].sort(byText)) {
    const a = old.get(name);
    const b = now.get(name);
    if (summary(a) === summary(b)) continue;
    if (data) {
      out.push(JSON.stringify({ time: at.toISOString(), node: name, from: a?.state ?? 'gone', to: b?.state ?? left(a), blocks: b?.blocks ?? [] }));
    } else {
      out.push(`${at.toISOString()}  ${name}  ${summary(a)} -> ${summary(b, a)}`);
    }
  }
  return out;
}

/** Waits for SIGINT or SIGTERM. */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
}

async function watchNodes(inv: Invocation, io: CliIO, session: EtcdSession, first: Snapshot): Promise<number> {
  const data = isData(inv.options.output);
  let rows = nodeRows(first);
  io.stdout(data ? `${JSON.stringify(onlyIgnored(inv, rows))}\n` : (render(inv, rows) as string));
  const { client, keys } = session;
  const watchers = await Promise.all(
    [keys.nodesPrefix(), keys.blocksPrefix(), keys.drainPrefix()].map((p) => client.watch().prefix(p).startRevision(String(BigInt(first.revision) + 1n)).create()),
  );
  let timer: NodeJS.Timeout | undefined;
  let reading = Promise.resolve();
  const reread = (): void => {
    reading = reading.then(async () => {
      const next = nodeRows(await readSnapshot(session));
      for (const line of changeLines(rows, next, new Date(), data)) io.stdout(`${line}\n`);
      rows = next;
    }).catch((err: unknown) => io.stderr(`trellisctl: warning: re-reading the nodes failed: ${(err as Error).message}\n`));
  };
  for (const w of watchers) {
    w.on('data', () => {
      // A burst of changes (a lease expiring deletes two keys) is read once.
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(reread, 100);
    });
  }
  await interrupted();
  if (timer !== undefined) clearTimeout(timer);
  await Promise.all(watchers.map((w) => w.cancel().catch(() => undefined)));
  await reading;
  return EXIT_OK;
}

export const nodesCommand: LeafCommand = {
  kind: 'command',
  name: 'nodes',
  summary: 'list nodes and their life cycle state (live, draining, dead); --watch streams changes',
  args: '',
  positionals: { min: 0, max: 0 },
  options: {
    output: outputOption,
    all: allOption,
    ignored: ignoredOption,
    watch: { type: 'boolean', short: 'w', doc: 'after the list, print one line per change of a node (JSON lines with -o json) until interrupted' },
    ...etcdOptions,
  },
  description:
    'Lists every node the cluster knows of, with its state: live (a lease holds\n' +
    'its node record: subnet, host IP, instance id, lease and blocks shown),\n' +
    'draining (live, and drained by "trellisctl node drain NAME"; -o json gives\n' +
    'the drain record as "drain": {since, by, reason}) or\n' +
    'dead (no node record, but block claims still name it; "trellisctl node\n' +
    'remove NAME" gives them back). Node records that fail validation (or are\n' +
    'too large to read) are listed with the reason trellisd ignores them;\n' +
    '--ignored lists only those. --watch then prints a line per change.',
  examples: ['trellisctl nodes', 'trellisctl nodes --watch', 'trellisctl nodes -o json --etcd-endpoints http://198.18.0.2:2379'],
  run: async (inv, io) => {
    if (inv.options.watch !== true) return withSnapshot(inv, io, (s) => render(inv, nodeRows(s)));
    const session = await openEtcd(inv.options);
    try {
      const first = await readSnapshot(session);
      if (first.topologyProblem !== undefined) io.stderr(`trellisctl: warning: ${first.topologyProblem}\n`);
      if (first.topology === undefined) return EXIT_FAILURE;
      return await watchNodes(inv, io, session, first);
    } finally {
      session.close();
    }
  },
};
