// Fault: one host cut off from etcd for twice the hold time by nftables in
// its namespace (lab/etcd-partition.ts). Its lease expires, so its peers
// withdraw its routes (they cannot tell it from a dead node: that host is
// "cut off" for the measures); the docs promise everything else keeps
// working, and that the host comes back by itself once healed.

import { cutFromEtcd } from '../etcd-partition.js';
import { delay } from '../pids.js';
import type { ChaosFault } from './fault.js';

export const partitionNode: ChaosFault = {
  name: 'partition-node',
  summary: 'one host cut off from etcd (nftables) for 2× the hold time',
  promised: true,
  async run(world) {
    const { cluster } = world;
    // The last host that runs a pod (in VPC mode the last host of the lab is
    // the spare, which may not have joined yet).
    const host = world.pods.at(-1)!.host;
    const heal = await cutFromEtcd(cluster, host);
    try {
      await delay(2 * world.holdMs);
    } finally {
      await heal();
    }
    return { cutOff: [host] };
  },
};
