// `trellisctl topology apply FILE` and `trellisctl topology show`: the stored
// topology in etcd.
//
// apply is a compare-and-swap on the stored record's revision (or on its
// absence), so two concurrent applies cannot both win, and it refuses any
// change that would move or shrink an existing subnet's pod prefix, change
// the block size under claimed blocks, or orphan a claimed block.

import { formatPrefix, parsePrefix } from '../core/cidr.js';
import { allSubnets, type Topology } from '../core/topology.js';
import { TopologySchema } from '../gen/trellis/v1/records_pb.js';
import { decodeRecord, encodeRecord } from '../state/records.js';
import { checkTopologyChange, topologyFromRecord, topologyToRecord, type ClaimedBlock } from '../state/topology-record.js';
import { BlockSchema } from '../gen/trellis/v1/records_pb.js';
import { readPrefix } from '../etcd/paged-range.js';
import { EXIT_FAILURE, EXIT_OK, type LeafCommand } from './command.js';
import { readSnapshot } from './cluster-read.js';
import { etcdOptions, openEtcd } from './etcd-options.js';
import { documentOutputOption, formatData, isData, toNumber } from './output.js';
import { displayName, loadTopologyFile } from './topology-file.js';
import { renderTopologyTable, topologyToJSON } from './topology-render.js';

function subnetChanges(current: Topology | undefined, next: Topology): string[] {
  const before = new Map((current === undefined ? [] : allSubnets(current)).map((s) => [s.id, s]));
  const lines: string[] = [];
  for (const s of allSubnets(next)) {
    const old = before.get(s.id);
    if (old === undefined) lines.push(`  + subnet ${s.id} (zone ${s.zone}): pods ${formatPrefix(s.podPrefix)}, hosts ${formatPrefix(s.cidr)}`);
    else if (formatPrefix(old.podPrefix) !== formatPrefix(s.podPrefix)) lines.push(`  ~ subnet ${s.id}: pods ${formatPrefix(old.podPrefix)} -> ${formatPrefix(s.podPrefix)}`);
    before.delete(s.id);
  }
  for (const id of before.keys()) lines.push(`  - subnet ${id}`);
  return lines;
}

export const applyCommand: LeafCommand = {
  kind: 'command',
  name: 'apply',
  summary: 'store a topology file in etcd (safely: nothing claimed may move)',
  args: 'FILE',
  positionals: { min: 1, max: 1 },
  options: {
    'dry-run': { type: 'boolean', doc: 'check the change against etcd but do not write it' },
    ...etcdOptions,
  },
  description:
    'Validates FILE, compares it with the topology stored in etcd, and stores it\n' +
    'with a compare-and-swap on the stored revision. Refused, with a message per\n' +
    'problem: moving or shrinking an existing subnet\'s pod prefix, removing a\n' +
    'subnet that still has claimed blocks, changing blockSize while blocks are\n' +
    'claimed, or any change that leaves a claimed block outside its subnet.\n' +
    'Appending zones and subnets is always accepted.',
  examples: ['trellisctl topology apply examples/topology.yaml', 'trellisctl topology apply new.yaml --dry-run'],
  async run(inv, io) {
    const file = inv.positionals[0] as string;
    const next = await loadTopologyFile(io, file);
    if (typeof next === 'number') return next;
    const session = await openEtcd(inv.options);
    try {
      const { client, keys } = session;
      const res = await client.get(keys.topology()).exec();
      const kv = res.kvs[0];
      let current: Topology | undefined;
      let generation = 0n;
      if (kv !== undefined) {
        const decoded = decodeRecord(TopologySchema, kv.value.toString());
        const checked = decoded.ok ? topologyFromRecord(decoded.value) : decoded;
        if (!checked.ok) {
          io.stderr(`trellisctl: the stored topology is invalid (${checked.reason}); fix it with etcdctl before applying\n`);
          return EXIT_FAILURE;
        }
        current = checked.value;
        generation = decoded.ok ? decoded.value.generation : 0n;
      }
      const blocks = await readPrefix(client, keys.blocksPrefix());
      const claimed: ClaimedBlock[] = [];
      for (const kv of blocks.kvs) {
        const b = decodeRecord(BlockSchema, kv.value.toString());
        if (!b.ok) continue;
        try {
          claimed.push({ prefix: parsePrefix(b.value.prefix), subnet: b.value.subnet, node: b.value.node });
        } catch {
          // a block record with a bad prefix is nobody's block
        }
      }
      const problems = current === undefined ? [] : checkTopologyChange(current, next, claimed);
      if (problems.length > 0) {
        io.stderr(`${displayName(file)}: refused, the stored topology is unchanged:\n${problems.map((p) => `  ${p}\n`).join('')}`);
        return EXIT_FAILURE;
      }
      const changes = subnetChanges(current, next);
      if (inv.options['dry-run'] === true) {
        io.stdout(`${displayName(file)}: would apply as generation ${generation + 1n}${changes.length > 0 ? `:\n${changes.join('\n')}` : ' (no subnet changes)'}\n`);
        return EXIT_OK;
      }
      const value = encodeRecord(TopologySchema, topologyToRecord(next, generation + 1n, Date.now()));
      const txn = kv === undefined ? client.if(keys.topology(), 'Create', '==', 0) : client.if(keys.topology(), 'Mod', '==', String(kv.mod_revision));
      const done = await txn.then(client.put(keys.topology()).value(value)).commit();
      if (!done.succeeded) {
        io.stderr('trellisctl: the stored topology changed while applying; run the command again\n');
        return EXIT_FAILURE;
      }
      io.stdout(`${displayName(file)}: applied as generation ${generation + 1n}${changes.length > 0 ? `:\n${changes.join('\n')}` : ' (no subnet changes)'}\n`);
      return EXIT_OK;
    } finally {
      session.close();
    }
  },
};

export const showCommand: LeafCommand = {
  kind: 'command',
  name: 'show',
  summary: 'print the topology stored in etcd',
  args: '',
  positionals: { min: 0, max: 0 },
  options: {
    output: documentOutputOption,
    ...etcdOptions,
  },
  description: 'Prints the stored topology like "topology render" does for a file, with its\ngeneration and when it was applied.',
  examples: ['trellisctl topology show', 'trellisctl topology show -o json'],
  async run(inv, io) {
    const session = await openEtcd(inv.options);
    try {
      const s = await readSnapshot(session);
      if (s.topology === undefined || s.topologyRecord === undefined) {
        io.stderr(`trellisctl: ${s.topologyProblem ?? 'no topology'}\n`);
        return EXIT_FAILURE;
      }
      const generation = s.topologyRecord.generation.toString();
      const appliedAt = s.topologyRecord.appliedAt === undefined ? '' : new Date(Number(s.topologyRecord.appliedAt.seconds) * 1000).toISOString();
      if (isData(inv.options.output)) io.stdout(formatData(inv.options.output, { generation: toNumber(s.topologyRecord.generation), appliedAt, ...topologyToJSON(s.topology) }));
      else io.stdout(`generation ${generation}, applied ${appliedAt}\n${renderTopologyTable(s.topology)}`);
      return EXIT_OK;
    } finally {
      session.close();
    }
  },
};
