// `trellisctl blocks | routes` (and helpers of `nodes`, nodes-cmd.ts): the live state in etcd, as tables for
// people (-o wide adds columns) or JSON/YAML for programs (counts as numbers).
// Rows are sorted: nodes by name, blocks by prefix (numerically), routes by
// subnet then node. Invalid records are listed too (marked, with
// the reason the daemons ignore them), because an operator debugging a
// missing route needs to see exactly those.

import { comparePrefix, formatAddress, formatPrefix, parsePrefix, size, type Prefix } from '../core/cidr.js';
import { Keys } from '../state/keys.js';
import { hex } from '../etcd/lease-keeper.js';
import { timestampToIso } from '../state/records.js';
import { EXIT_FAILURE, EXIT_OK, type CliIO, type Invocation, type LeafCommand } from './command.js';
import { readSnapshot, type Snapshot } from './cluster-read.js';
import { etcdOptions, openEtcd } from './etcd-options.js';
import { formatData, formatTable, isData, outputOption, toNumber } from './output.js';
import type { AdvertisementInfo, BlockInfo } from '../state/validate.js';
import type { ClaimConflict } from '../state/cluster-view.js';

/** Reads a snapshot, prints what `show` makes of it; exit 1 when no usable topology is stored. */
export async function withSnapshot(inv: Invocation, io: CliIO, show: (s: Snapshot) => unknown[] | string): Promise<number> {
  const session = await openEtcd(inv.options);
  try {
    const snapshot = await readSnapshot(session);
    if (snapshot.topologyProblem !== undefined) io.stderr(`trellisctl: warning: ${snapshot.topologyProblem}\n`);
    const out = show(snapshot);
    io.stdout(typeof out === 'string' ? out : formatData(inv.options.output, out));
    return snapshot.topology === undefined ? EXIT_FAILURE : EXIT_OK;
  } finally {
    session.close();
  }
}

export function ignoredReason(s: Snapshot, key: string): string | undefined {
  return s.ignored.find((i) => i.key === key && i.kind !== 'advertised-prefix')?.reason;
}

export const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function tryPrefix(text: string): Prefix | undefined {
  try {
    return parsePrefix(text);
  } catch {
    return undefined;
  }
}

/** Orders prefix texts numerically (comparePrefix); text that does not parse sorts after, by its characters. */
export function byPrefixText(a: string, b: string): number {
  const [x, y] = [tryPrefix(a), tryPrefix(b)];
  if (x !== undefined && y !== undefined) return comparePrefix(x, y);
  if (x !== undefined || y !== undefined) return x !== undefined ? -1 : 1;
  return byText(a, b);
}

/** `--ignored`: only the records trellisd ignores (or ignores part of), each with its reason. */
export const ignoredOption = { type: 'boolean', doc: 'list only the records trellisd ignores, with the reason' } as const;

/** `--all`: every record, those trellisd ignores included with their reason (what is listed without --ignored). */
export const allOption = { type: 'boolean', doc: 'list every record, those trellisd ignores included with the reason (the default)' } as const;

export const onlyIgnored = <T extends { valid: boolean; rejected?: readonly unknown[] }>(inv: Invocation, rows: T[]): T[] =>
  inv.options.ignored === true && inv.options.all !== true ? rows.filter((r) => !r.valid || (r.rejected?.length ?? 0) > 0) : rows;

/** An aligned table, or "(none)" when there are no rows. */
export const table = (header: string[], rows: string[][], right: number[] = []): string =>
  rows.length === 0 ? '(none)\n' : `${formatTable(header, rows, { right }).join('\n')}\n`;

export const blocksCommand: LeafCommand = {
  kind: 'command',
  name: 'blocks',
  summary: 'list claimed address blocks and how full they are',
  args: '',
  positionals: { min: 0, max: 0 },
  options: {
    output: outputOption,
    all: allOption,
    ignored: ignoredOption,
    node: { type: 'string', valueName: 'NODE', doc: 'only blocks of this node' },
    subnet: { type: 'string', valueName: 'SUBNET', doc: 'only blocks of this subnet' },
    ...etcdOptions,
  },
  description:
    'Lists the block claims in etcd (they survive restarts and outages): prefix,\n' +
    'subnet, owner node, addresses in use, and when the block was claimed. A\n' +
    'claim that disagrees with the holds of its block (rewritten or deleted\n' +
    'outside the protocol) is shown as a conflict, with the rightful holder\n' +
    'the daemons route the block to; --ignored lists only such claims and\n' +
    'invalid ones.',
  examples: ['trellisctl blocks', 'trellisctl blocks --node node-a -o json'],
  run: (inv, io) =>
    withSnapshot(inv, io, (s) => {
      const valid = s.view?.blocks() ?? new Map<string, BlockInfo>();
      const conflicts = s.view?.conflicts() ?? new Map<string, ClaimConflict>();
      const claimRows = s.recordKeys
        .filter((key) => key.startsWith(s.keys.blocksPrefix()))
        .map((key) => {
          const b = s.blockRecords.get(key);
          const named = s.keys.blockFromKey(key);
          const prefix = b?.prefix || (named === undefined ? Keys.leaf(key) : formatPrefix(named));
          const parsed = tryPrefix(prefix);
          const conflict = named === undefined ? undefined : conflicts.get(formatPrefix(named));
          const ok = conflict === undefined && b !== undefined && valid.has(b.prefix) && named !== undefined && valid.get(b.prefix)?.node === b.node;
          return {
            key,
            prefix,
            subnet: b?.subnet ?? '',
            node: b?.node ?? '',
            allocated: Object.keys(b?.allocations ?? {}).length,
            size: parsed === undefined ? null : toNumber(size(parsed)),
            resting: Object.keys(b?.released ?? {}).length,
            claimedAt: timestampToIso(b?.claimedAt),
            valid: ok,
            ...(conflict !== undefined ? { holder: conflict.holder, problem: `conflict: ${conflict.reason}` } : ok ? {} : { problem: ignoredReason(s, key) ?? 'invalid record' }),
          };
        });
      // Blocks still held whose claim is gone (deleted outside the protocol).
      const listed = new Set(claimRows.map((r) => r.prefix));
      const heldRows = [...conflicts.values()].filter((c) => !listed.has(c.prefix)).map((c) => ({
        key: s.keys.block(c.prefix), prefix: c.prefix, subnet: valid.get(c.prefix)?.subnet.id ?? '', node: '', allocated: 0,
        size: toNumber(size(parsePrefix(c.prefix))), resting: 0, claimedAt: '', valid: false, holder: c.holder, problem: `conflict: ${c.reason}`,
      }));
      type Row = (typeof heldRows)[number] | ((typeof claimRows)[number] & { holder?: string; problem?: string });
      const rows = ([...claimRows, ...heldRows] as Row[])
        .filter((b) => inv.options.node === undefined || b.node === inv.options.node)
        .filter((b) => inv.options.subnet === undefined || b.subnet === inv.options.subnet)
        .sort((a, b) => byPrefixText(a.prefix, b.prefix));
      if (isData(inv.options.output)) return onlyIgnored(inv, rows);
      const wide = inv.options.output === 'wide';
      return table(
        ['BLOCK', 'SUBNET', 'NODE', 'USED', ...(wide ? ['RESTING', 'KEY'] : []), 'CLAIMED', 'STATUS'],
        onlyIgnored(inv, rows).map((r) => [
          r.prefix || '-', r.subnet || '-', r.node || '-', `${r.allocated}/${r.size ?? '?'}`,
          ...(wide ? [String(r.resting), r.key] : []),
          r.claimedAt || '-', r.valid ? 'ok' : r.holder !== undefined ? `${r.problem ?? ''} (routed to ${r.holder})` : `ignored: ${r.problem ?? ''}`,
        ]),
        wide ? [3, 4] : [3],
      );
    }),
};

export const routesCommand: LeafCommand = {
  kind: 'command',
  name: 'routes',
  summary: "list nodes' advertisements: pod prefixes and their next hop",
  args: '',
  positionals: { min: 0, max: 0 },
  options: { output: outputOption, all: allOption, ignored: ignoredOption, subnet: { type: 'string', valueName: 'SUBNET', doc: 'only this subnet' }, ...etcdOptions },
  description:
    'Lists every advertisement (leased: it vanishes one hold time after its node\n' +
    'dies): the prefixes a node advertises via its host IP. Prefixes that the\n' +
    'block records do not give to the node are shown as rejected, with the\n' +
    'reason: no trellisd routes them.',
  examples: ['trellisctl routes', 'trellisctl routes --subnet subnet-0a1 -o json'],
  run: (inv, io) =>
    withSnapshot(inv, io, (s) => {
      const keys = s.keys;
      const accepted = s.view?.advertisements() ?? new Map<string, AdvertisementInfo>();
      const rows = s.recordKeys
        .filter((k) => k.startsWith(keys.routesPrefix()))
        .map((key) => ({ key, where: keys.routeFromKey(key) }))
        .filter((r) => inv.options.subnet === undefined || r.where?.subnet === inv.options.subnet)
        .map(({ key, where }) => {
          const a = where === undefined ? undefined : accepted.get(where.node);
          return {
            subnet: where?.subnet ?? '',
            node: where?.node ?? key,
            nextHop: a === undefined ? '' : formatAddress(a.nextHop),
            instanceId: a?.instanceId ?? '',
            lease: s.leases.has(key) ? hex(s.leases.get(key) as string) : '-',
            prefixes: [...(a?.prefixes ?? [])].sort(comparePrefix).map(formatPrefix),
            rejected: a?.rejected ?? [],
            valid: a !== undefined,
            ...(a === undefined ? { problem: ignoredReason(s, key) ?? 'invalid record' } : {}),
          };
        })
        .sort((a, b) => byText(a.subnet, b.subnet) || byText(a.node, b.node));
      if (isData(inv.options.output)) return onlyIgnored(inv, rows);
      const wide = inv.options.output === 'wide';
      return table(
        ['SUBNET', 'NODE', 'NEXT HOP', ...(wide ? ['INSTANCE', 'LEASE'] : []), 'PREFIXES', 'STATUS'],
        onlyIgnored(inv, rows).map((r) => [
          r.subnet,
          r.node,
          r.nextHop,
          ...(wide ? [r.instanceId || '-', r.lease] : []),
          r.prefixes.join(' ') || '-',
          !r.valid ? `ignored: ${r.problem}` : r.rejected.length > 0 ? `rejected ${r.rejected.map((x) => `${x.prefix} (${x.reason})`).join(', ')}` : 'ok',
        ]),
      );
    }),
};
