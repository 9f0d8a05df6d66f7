// Fault: one host cut off from etcd for twice the hold time by nftables in
// its namespace (a table of the lab's own, `trellis_chaos`, deleted after).
// Its lease expires, so its peers withdraw its routes (they cannot tell it
// from a dead node: that host is "cut off" for the measures); the docs
// promise everything else keeps working, and that the host comes back by
// itself once healed.

import { delay } from '../pids.js';
import type { ChaosFault } from './fault.js';

const TABLE = 'trellis_chaos';

export const partitionNode: ChaosFault = {
  name: 'partition-node',
  summary: 'one host cut off from etcd (nftables) for 2× the hold time',
  promised: true,
  async run(world) {
    const { cluster } = world;
    const host = cluster.hosts[cluster.hosts.length - 1]!;
    // Every etcd member (the endpoint is a comma-separated list with several).
    const members = cluster.endpoint.split(',').map((e) => new URL(e));
    const rules = [
      `add table inet ${TABLE}`,
      `add chain inet ${TABLE} out { type filter hook output priority 0 ; policy accept ; }`,
      ...members.map((u) => `add rule inet ${TABLE} out ip daddr ${u.hostname} tcp dport ${u.port} drop`),
    ].join('\n');
    await cluster.lab.exec(host.ns, 'sh', ['-c', `printf '%s\\n' '${rules}' | nft -f -`]);
    try {
      await delay(2 * world.holdMs);
    } finally {
      await cluster.lab.exec(host.ns, 'nft', ['delete', 'table', 'inet', TABLE]);
    }
    return { cutOff: [host] };
  },
};
