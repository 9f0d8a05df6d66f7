// `trellisd --withdraw`: remove this host's node from the cluster at once. Its
// lease is revoked (etcd deletes its node record and advertisement with it, so
// peers drop its routes now instead of after the hold time), then every block
// it holds is given back with its pod address records (ipam/<node>/). The
// node's daemon must be stopped first, or it would publish itself again.
//
// It acts only on the lease this host owns: the state file must record the
// same node name and etcd prefix as the configuration (else it is refused,
// exit 2, nothing touched), and a node record or advertisement of that name
// held by another lease (the node runs elsewhere) is refused too (exit 1).
// Removing another host's node is `trellisctl node remove`.

import { join } from 'node:path';
import type { Logger } from 'pino';
import type { TrellisConfig } from '../src/config/load.js';
import { connectEtcd, explainEtcdError } from '../src/etcd/client.js';
import { hex, LeaseKeeper, type LeaseOwner } from '../src/etcd/lease-keeper.js';
import { leasesOf, readNodePresence, releaseNodeRecords } from '../src/etcd/node-removal.js';
import { ErrorCode, TrellisError } from '../src/errors.js';
import { Keys } from '../src/state/keys.js';
import { etcdSettings } from './cluster-wait.js';

/** The owner a node's lease state file records: its name and the cluster prefix. */
export function leaseOwner(config: TrellisConfig): LeaseOwner {
  return { node: config.nodeName, prefix: new Keys(config.etcd.prefix).root.replace(/\/v1$/, '') };
}

export async function withdrawNode(config: TrellisConfig, log: Logger): Promise<{ blocks: string[] }> {
  const keys = new Keys(config.etcd.prefix);
  const owner = leaseOwner(config);
  // The client connects on its first request: a state file of another node is refused before that.
  const client = connectEtcd(etcdSettings(config));
  try {
    const lease = new LeaseKeeper(client, {
      ttlSeconds: config.holdTime / 1000,
      stateFile: join(config.stateDir, 'lease.json'),
      log: log.child({ component: 'lease' }),
      owner,
    });
    const own = lease.checkOwned(owner);
    let presence;
    try {
      presence = await readNodePresence(client, keys, config.nodeName);
    } catch (err) {
      throw explainEtcdError(err, etcdSettings(config));
    }
    const foreign = leasesOf(presence).filter((l) => l !== own);
    if (foreign.length > 0) {
      throw new TrellisError(
        ErrorCode.Conflict,
        `node ${config.nodeName} is registered under lease ${foreign.map(hex).join(', ')}, which ${join(config.stateDir, 'lease.json')} does not hold ` +
          `(its trellisd runs on another host or with another state directory): nothing withdrawn; stop it there, ` +
          `or remove the node from any host with "trellisctl node remove ${config.nodeName} --force"`,
        { details: { node: config.nodeName, leases: foreign.map(hex) } },
      );
    }
    await lease.revokeOwned(owner);
    // Left without a lease (none recorded, or an older unleased write): deleted by name.
    if (presence.nodeRecord !== undefined) await client.delete().key(presence.nodeRecord.key).exec();
    for (const a of presence.advertisements) await client.delete().key(a.key).exec();
    const released = await releaseNodeRecords(client, keys, config.nodeName, log, true);
    for (const s of released.skipped) log.warn(s, 'block left in place');
    return { blocks: released.blocks };
  } finally {
    client.close();
  }
}
