// `trellisd --withdraw`: remove a node from the cluster at once. Its lease is
// revoked (etcd deletes its node record and advertisement with it, so peers
// drop its routes now instead of after the hold time), then every block it
// holds is given back with its pod address records (ipam/<node>/). The node's
// daemon must be stopped first, or it would publish itself again.

import { join } from 'node:path';
import type { Logger } from 'pino';
import { Ipam } from '../src/core/ipam.js';
import { placeNode } from '../src/core/ipam-placement.js';
import type { TrellisConfig } from '../src/config/load.js';
import { connectEtcd, explainEtcdError } from '../src/etcd/client.js';
import { etcdClaims } from '../src/etcd/claim-reader.js';
import { EtcdIpamStore } from '../src/etcd/ipam-store.js';
import { LeaseKeeper } from '../src/etcd/lease-keeper.js';
import { Keys } from '../src/state/keys.js';
import { decodeStoredTopology } from '../src/state/topology-record.js';
import { etcdSettings } from './cluster-wait.js';

export async function withdrawNode(config: TrellisConfig, log: Logger): Promise<{ blocks: string[] }> {
  const keys = new Keys(config.etcd.prefix);
  const client = connectEtcd(etcdSettings(config));
  try {
    let topologyText: string | null;
    try {
      topologyText = await client.get(keys.topology()).string();
    } catch (err) {
      throw explainEtcdError(err, etcdSettings(config));
    }
    const lease = new LeaseKeeper(client, {
      ttlSeconds: config.holdTime / 1000,
      stateFile: join(config.stateDir, 'lease.json'),
      log: log.child({ component: 'lease' }),
    });
    await lease.revoke();
    await client.delete().key(keys.node(config.nodeName)).exec();
    const topology = topologyText === null ? undefined : decodeStoredTopology(topologyText);
    if (topology === undefined || !topology.ok) {
      log.warn('no valid topology stored: node record removed, blocks left in place');
      return { blocks: [] };
    }
    const subnet = placeNode(topology.value, { name: config.nodeName, hostIP: config.hostIP, subnet: config.subnet });
    await client.delete().key(keys.route(subnet.id, config.nodeName)).exec();
    const store = new EtcdIpamStore(client, keys, log);
    const ipam = new Ipam({ topology: topology.value, subnet, node: config.nodeName, store, claims: etcdClaims(client, keys), clock: Date.now });
    const blocks = await ipam.releaseNode();
    // Anything left under ipam/<node>/ belongs to no claim of the node any more.
    await store.deleteAddresses(config.nodeName);
    return { blocks };
  } finally {
    client.close();
  }
}
