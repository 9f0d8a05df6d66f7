// `trellisctl node …`: acting on one node of the cluster, from any host with
// trellisctl's etcd credentials.
//
//   remove NAME [--force] [-o FMT]
//        give back the node's block claims and pod address records; refused
//        (exit 1, nothing touched) while the node is live (a lease holds its
//        node record or an advertisement) unless --force, which revokes that
//        lease first and says what the node's trellisd will do.
//   drain NAME / uncordon NAME   (node-drain-cmd.ts)
// Removal is idempotent: a second run removes nothing and says so.

import { pino, type Logger } from 'pino';
import { hex } from '../etcd/lease-keeper.js';
import { isPresent, leasesOf, readNodePresence, releaseNodeRecords, type NodePresence } from '../etcd/node-removal.js';
import { EXIT_FAILURE, type CliIO, type CommandGroup, type LeafCommand } from './command.js';
import { etcdOptions } from './etcd-options.js';
import { actOnNode } from './node-action.js';
import { documentOutputOption } from './output.js';
import { nodeDrainCommand, nodeUncordonCommand } from './node-drain-cmd.js';

/** Warnings of the etcd adapters (records that cannot be decoded) as trellisctl warning lines. */
export function warningLog(io: CliIO): Logger {
  return pino({ level: 'warn', base: undefined, timestamp: false }, {
    write: (line: string) => {
      const { msg, key, reason } = JSON.parse(line) as { msg: string; key?: string; reason?: string };
      io.stderr(`trellisctl: warning: ${msg}${key === undefined ? '' : `: ${key}`}${reason === undefined ? '' : ` (${reason})`}\n`);
    },
  });
}

/** What a live node's trellisd does once its records were removed under it. */
export function comebackNotice(node: string): string {
  return (
    `node ${node} was live: its lease was revoked. While its trellisd runs it will register again at once under a new lease, ` +
    `see its blocks taken, withdraw them from its advertisement, report them (error log, trellis_blocks_lost_total, not ready ` +
    `until it holds a block again) and claim a new block, never one of the removed ones in that run; no address of a removed ` +
    `block is handed out, but pods already running on it keep those addresses and become unreachable: restart them, or stop ` +
    `its trellisd for good (then run this command again to give back what it claimed meanwhile)`
  );
}

function describeLive(p: NodePresence): string {
  const held = [
    ...(p.nodeRecord === undefined ? [] : ['its node record']),
    ...p.advertisements.map((a) => `its advertisement in ${a.subnet}`),
  ].join(' and ');
  return `node ${p.node} is live: lease ${leasesOf(p).map(hex).join(', ') || '(none)'} holds ${held}`;
}

export const nodeRemoveCommand: LeafCommand = {
  kind: 'command',
  name: 'remove',
  summary: "give back a dead node's blocks and pod addresses (refused while it is live)",
  args: 'NAME',
  positionals: { min: 1, max: 1 },
  options: {
    force: { type: 'boolean', doc: 'remove a live node too: revoke its lease first (its trellisd, if running, registers again)' },
    output: documentOutputOption,
    ...etcdOptions,
  },
  description:
    "Removes what a node left in etcd: every block claim that names it, with the\n" +
    "pod address records of those blocks and any other record under\n" +
    "ipam/NAME/. Each block goes in one transaction that checks it still names\n" +
    'the node. A node is live while a lease holds its node record or an\n' +
    'advertisement: it is refused (exit 1, nothing removed) unless --force, which\n' +
    "revokes that lease first and prints what the node's trellisd will do.\n" +
    'Safe to repeat: a second run removes nothing. On the node itself,\n' +
    '"trellisd --withdraw" does the same for its own lease.',
  examples: ['trellisctl node remove node-b7', 'trellisctl node remove node-b7 --force -o json'],
  run: (inv, io) =>
    actOnNode(inv, io, async (node, { client, keys }) => {
      const force = inv.options.force === true;
      const presence = await readNodePresence(client, keys, node);
      const live = isPresent(presence);
      if (live && !force) {
        io.stderr(
          `trellisctl: ${describeLive(presence)}; nothing removed (stop its trellisd and wait one hold time, or run ` +
            `"trellisd --withdraw" on it; --force removes it anyway)\n`,
        );
        return EXIT_FAILURE;
      }
      const revoked = leasesOf(presence);
      for (const id of revoked) {
        try {
          await client.leaseClient.leaseRevoke({ ID: id });
        } catch (err) {
          if (!/not found/i.test(String((err as Error).message))) throw err;
        }
      }
      // Records left without a lease (none should be) are deleted by name.
      for (const k of [presence.nodeRecord, ...presence.advertisements]) if (k !== undefined && k.lease === '0') await client.delete().key(k.key).exec();
      const released = await releaseNodeRecords(client, keys, node, warningLog(io), !live);
      const result = {
        node,
        live,
        forced: live && force,
        leasesRevoked: revoked.map(hex),
        nodeRecord: presence.nodeRecord !== undefined,
        advertisements: presence.advertisements.map((a) => a.subnet).sort(),
        blocks: released.blocks,
        addresses: released.addresses,
        skipped: released.skipped,
        ...(live ? { notice: comebackNotice(node) } : {}),
      };
      return { result, text: describeRemoval(result), warnings: live ? [comebackNotice(node)] : [] };
    }),
};

function describeRemoval(r: {
  node: string; leasesRevoked: string[]; nodeRecord: boolean; advertisements: string[]; blocks: string[]; addresses: number;
  skipped: { block: string; reason: string }[];
}): string {
  const parts = [
    ...(r.leasesRevoked.length > 0 ? [`lease ${r.leasesRevoked.join(', ')} revoked`] : []),
    ...(r.nodeRecord ? ['node record'] : []),
    ...r.advertisements.map((s) => `advertisement in ${s}`),
    ...(r.blocks.length > 0 ? [`${r.blocks.length} block(s): ${r.blocks.join(' ')}`] : []),
    ...(r.addresses > 0 ? [`${r.addresses} pod address record(s)`] : []),
  ];
  const lines = [parts.length === 0 ? `node ${r.node}: nothing to remove` : `removed node ${r.node}: ${parts.join(', ')}`];
  for (const s of r.skipped) lines.push(`left in place: ${s.block} (${s.reason})`);
  return `${lines.join('\n')}\n`;
}

export const nodeCommand: CommandGroup = {
  kind: 'group',
  name: 'node',
  summary: 'act on one node: remove, drain or uncordon it',
  description: 'Commands that act on one node of the cluster, from any host that reaches etcd\n(the list of nodes is "trellisctl nodes").',
  commands: [nodeRemoveCommand, nodeDrainCommand, nodeUncordonCommand],
  examples: ['trellisctl node remove node-b7', 'trellisctl node drain node-b7', 'trellisctl node uncordon node-b7'],
};
