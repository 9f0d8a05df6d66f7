// `trellisctl node drain NAME` and `trellisctl node uncordon NAME`: an
// operator's drain of a node before maintenance, kept as a small record at
// <prefix>/v1/drain/<node> (src/state/drain-record.ts; admin credential,
// docs/trust.md). While it exists the subnet's VPC advertiser (and BGP
// exporter) moves the node's forwarding duties and its own entries to other
// healthy hosts of its subnet, and the node stops being a candidate for
// those roles; uncordon deletes it and undoes that (docs/lifecycle.md).
// Both are idempotent: a second drain keeps the first record (time, reason),
// an uncordon of a node not draining changes nothing. A name that neither a
// node record, a block claim nor a drain record names is refused (exit 1).

import { hostname, userInfo } from 'node:os';
import { deleteDrain, putDrain } from '../etcd/node-drain.js';
import { makeDrain, MAX_DRAIN_BY, MAX_DRAIN_REASON, type DrainInfo } from '../state/drain-record.js';
import { readSnapshot, type Snapshot } from './cluster-read.js';
import { EXIT_FAILURE, EXIT_USAGE, type CliIO, type LeafCommand } from './command.js';
import { etcdOptions } from './etcd-options.js';
import { actOnNode } from './node-action.js';
import { documentOutputOption } from './output.js';

/** Where a node stands, from the snapshot: live (record), its subnet, the other live nodes of it. */
interface Standing {
  readonly known: boolean;
  readonly live: boolean;
  readonly subnet: string;
  readonly otherLive: readonly string[];
}

function standing(s: Snapshot, node: string): Standing {
  const nodes = s.view?.nodes();
  const info = nodes?.get(node);
  const blocks = s.view?.blocksOf(node) ?? [];
  const live = s.recordKeys.includes(s.keys.node(node));
  const subnet = info?.subnet.id ?? blocks[0]?.subnet.id ?? '';
  const otherLive = [...(nodes?.values() ?? [])].filter((n) => n.name !== node && n.subnet.id === subnet).map((n) => n.name).sort();
  return { known: live || blocks.length > 0 || s.drains.has(node), live, subnet, otherLive };
}

function whoAmI(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry for this uid
  }
  return `${user}@${hostname()}`.slice(0, MAX_DRAIN_BY);
}

function unknownNode(io: CliIO, node: string, what: string): number {
  io.stderr(`trellisctl: unknown node ${node}: no node record, block claim or drain record names it (see "trellisctl nodes"); nothing ${what}\n`);
  return EXIT_FAILURE;
}

const describeDrain = (d: DrainInfo): string => `since ${d.since || '?'}${d.by === '' ? '' : ` by ${d.by}`}${d.reason === '' ? '' : `: ${d.reason}`}`;

export const nodeDrainCommand: LeafCommand = {
  kind: 'command',
  name: 'drain',
  summary: "move a node's forwarding and VPC/BGP entries to other hosts of its subnet before maintenance",
  args: 'NAME',
  positionals: { min: 1, max: 1 },
  options: {
    reason: { type: 'string', valueName: 'TEXT', doc: `why (kept in the drain record, at most ${MAX_DRAIN_REASON} characters)` },
    output: documentOutputOption,
    ...etcdOptions,
  },
  description:
    'Writes the drain record <prefix>/v1/drain/NAME (needs an admin credential).\n' +
    "While it exists, the subnet's VPC advertiser (and BGP exporter) forwards\n" +
    "nothing through NAME: the entries of NAME's own blocks keep their\n" +
    'destinations and move to other healthy hosts of its subnet, which reach\n' +
    'its pods over their direct route to it, so its pods stay reachable while\n' +
    'it is up; NAME stops being a candidate advertiser or exporter (a leader\n' +
    'hands the role over). When no other host of the subnet is healthy, NAME\n' +
    'keeps forwarding its own entries (a warning here and in "trellisctl vpc\n' +
    'status"). The record outlives restarts of NAME: "trellisctl node uncordon\n' +
    'NAME" ends the drain. Draining a node already draining changes nothing.\n' +
    '"trellisctl nodes" shows it as draining.',
  examples: ['trellisctl node drain node-b7', 'trellisctl node drain node-b7 --reason "kernel upgrade" -o json'],
  run: async (inv, io) => {
    const reason = typeof inv.options.reason === 'string' ? inv.options.reason : '';
    if (reason.length > MAX_DRAIN_REASON) {
      io.stderr(`trellisctl: --reason is ${reason.length} characters long; at most ${MAX_DRAIN_REASON}\n`);
      return EXIT_USAGE;
    }
    return actOnNode(inv, io, async (node, session) => {
      const where = standing(await readSnapshot(session), node);
      if (!where.known) return unknownNode(io, node, 'drained');
      const put = await putDrain(session.client, session.keys, makeDrain(node, reason, whoAmI(), Date.now()));
      const existing = put.existing?.ok === true ? put.existing.value : undefined;
      const record = existing ?? { node, since: new Date().toISOString(), reason, by: whoAmI() };
      const warnings: string[] = [];
      if (put.existing !== undefined && !put.existing.ok) warnings.push(`the drain record in etcd is not valid (${put.existing.reason}): daemons ignore it; "trellisctl node uncordon ${node}" deletes it, then drain again`);
      if (!where.live) warnings.push(`node ${node} has no node record (dead): its blocks are already forwarded by other hosts of ${where.subnet || 'its subnet'}`);
      else if (where.otherLive.length === 0) {
        warnings.push(`node ${node} is the only live node of subnet ${where.subnet}: it keeps forwarding its own entries (its pods stay reachable) until another host of ${where.subnet} is healthy`);
      }
      const text = !put.created
        ? `node ${node} is already draining (${existing === undefined ? 'record not valid' : describeDrain(existing)}); nothing changed\n`
        : `node ${node} is draining: the VPC advertiser and BGP exporter of ${where.subnet || 'its subnet'} move its entries and forwarding ` +
          `to other healthy hosts of the subnet; it is no candidate advertiser or exporter until "trellisctl node uncordon ${node}"\n`;
      return {
        result: { node, draining: true, changed: put.created, since: record.since, by: record.by, reason: record.reason, live: where.live, subnet: where.subnet, otherLiveNodes: where.otherLive, warnings },
        text,
        warnings,
      };
    });
  },
};

export const nodeUncordonCommand: LeafCommand = {
  kind: 'command',
  name: 'uncordon',
  summary: 'end the drain of a node: it forwards and may be elected again',
  args: 'NAME',
  positionals: { min: 1, max: 1 },
  options: { output: documentOutputOption, ...etcdOptions },
  description:
    'Deletes the drain record <prefix>/v1/drain/NAME (needs an admin credential):\n' +
    "the subnet's VPC advertiser (and BGP exporter) gives NAME its own entries\n" +
    'back and may use it as a forwarder again, and NAME is a candidate\n' +
    'advertiser or exporter again (at the back of the queue). A node that is\n' +
    'not draining is left as it is.',
  examples: ['trellisctl node uncordon node-b7', 'trellisctl node uncordon node-b7 -o json'],
  run: (inv, io) =>
    actOnNode(inv, io, async (node, session) => {
      const where = standing(await readSnapshot(session), node);
      const deleted = await deleteDrain(session.client, session.keys, node);
      if (deleted === undefined && !where.known) return unknownNode(io, node, 'uncordoned');
      const was = deleted?.ok === true ? deleted.value : undefined;
      const text =
        deleted === undefined
          ? `node ${node} is not draining; nothing changed\n`
          : `node ${node} uncordoned (was draining ${was === undefined ? 'under a record that was not valid' : describeDrain(was)}): it forwards its own entries again\n`;
      return { result: { node, draining: false, changed: deleted !== undefined, ...(was === undefined ? {} : { was }), live: where.live, subnet: where.subnet }, text };
    }),
};
