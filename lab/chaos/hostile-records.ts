// Faults: records written to etcd by someone with write access, then
// deleted. `hostile-malformed`: an advertisement that is not a record, one
// of 1 MiB, and one listing 4,096 prefixes outside the pod network; the docs
// promise they are ignored (no route, nothing else disturbed).
// `hostile-forged`: a well-formed block claim and advertisement of a free block of the pod
// network via a host that is no node (198.18.1.99), with no node record; no
// host must route it: the trust model (docs/trust.md) promises that an
// advertisement counts only under its live node record's lease and host IP.

import { AdvertisementSchema, BlockSchema } from '../../src/gen/trellis/v1/records_pb.js';
import { encodeRecord, makeRecord, msToTimestamp } from '../../src/state/records.js';
import { delay } from '../pids.js';
import type { ChaosFault, ChaosWorld } from './fault.js';

/** Puts the records (a number: that many bytes of "x", through stdin), holds them one hold time, deletes them. */
async function putFor(world: ChaosWorld, records: Array<[string, string | number]>): Promise<void> {
  const { cluster } = world;
  for (const [key, value] of records) {
    if (typeof value === 'string') await cluster.etcdctl(['put', key, '--', value]);
    else await cluster.lab.exec(cluster.router, 'sh', ['-c', `head -c ${value} /dev/zero | tr '\\0' x | ETCDCTL_API=3 etcdctl --endpoints=${cluster.endpoint} ${cluster.etcdctlUser().join(' ')} put '${key}'`]);
  }
  try {
    await delay(world.holdMs);
  } finally {
    for (const [key] of records) await cluster.etcdctl(['del', key]);
  }
}

export const hostileMalformed: ChaosFault = {
  name: 'hostile-malformed',
  summary: 'garbage, 1 MiB and 4,096-prefix advertisements put, then deleted',
  promised: true,
  async run(world) {
    const keys = world.cluster.keys;
    const many = Array.from({ length: 4096 }, (_, i) => `100.${64 + (i >> 8)}.${i & 255}.0/24`);
    const bogus = encodeRecord(AdvertisementSchema, makeRecord(AdvertisementSchema, { node: 'evil-many', subnet: 'subnet-1', nextHop: '198.18.1.98', prefixes: many }));
    await putFor(world, [
      [keys.route('subnet-1', 'evil-garbage'), 'this is not a record {'],
      [keys.route('subnet-1', 'evil-huge'), 1024 * 1024],
      [keys.route('subnet-1', 'evil-many'), bogus],
    ]);
    return { forbidden: many.slice(0, 16) };
  },
};

export const hostileForged: ChaosFault = {
  name: 'hostile-forged',
  summary: 'a forged claim and advertisement of a free block via 198.18.1.99, no node record',
  promised: true,
  async run(world) {
    const keys = world.cluster.keys;
    const free = '100.96.15.192/26';
    const forged = encodeRecord(AdvertisementSchema, makeRecord(AdvertisementSchema, { node: 'evil-forger', subnet: 'subnet-1', nextHop: '198.18.1.99', prefixes: [free] }));
    const claim = encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix: free, subnet: 'subnet-1', node: 'evil-forger', claimedAt: msToTimestamp(Date.now()) }));
    await putFor(world, [
      [keys.block(free), claim],
      [keys.route('subnet-1', 'evil-forger'), forged],
    ]);
    return { forbidden: [free] };
  },
};
