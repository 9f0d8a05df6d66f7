// Cuts one lab host off from etcd: an nftables table of the lab's own
// (`trellis_partition`, in the host's namespace only) drops what the host
// sends to every etcd member's client port. Nothing else of the host's
// traffic is touched, and no other namespace's rules.
// Invariant: heal() deletes exactly that table and is safe to call twice.

import type { ClusterLab, LabHost } from './cluster-lab.js';

const TABLE = 'trellis_partition';

/** Drops `host`'s packets to etcd until the returned heal() runs. */
export async function cutFromEtcd(cluster: ClusterLab, host: LabHost): Promise<() => Promise<void>> {
  // Every etcd member (the endpoint is a comma-separated list with several).
  const members = cluster.endpoint.split(',').map((e) => new URL(e));
  const rules = [
    `add table inet ${TABLE}`,
    `add chain inet ${TABLE} out { type filter hook output priority 0 ; policy accept ; }`,
    ...members.map((u) => `add rule inet ${TABLE} out ip daddr ${u.hostname} tcp dport ${u.port} drop`),
  ].join('\n');
  await cluster.lab.exec(host.ns, 'sh', ['-c', `printf '%s\\n' '${rules}' | nft -f -`]);
  let healed = false;
  return async () => {
    if (healed) return;
    healed = true;
    await cluster.lab.exec(host.ns, 'nft', ['delete', 'table', 'inet', TABLE]);
  };
}
