// Cuts one lab host off from some destinations: an nftables table of the
// lab's own (in the host's namespace only) drops what the host sends to each
// listed address and TCP port. Nothing else of the host's traffic is touched,
// and no other namespace's rules. cutFromEtcd names every etcd member's
// client port; a chaos fault names the EC2 endpoint.
// Invariant: heal() deletes exactly that table and is safe to call twice.

import type { ClusterLab, LabHost } from './cluster-lab.js';

/** One destination whose packets are dropped: an IPv4 address and a TCP port. */
export interface Destination {
  readonly address: string;
  readonly port: number | string;
}

/** Drops `host`'s TCP packets to each of `to` (in an nftables table named `table`) until the returned heal() runs. */
export async function cutOff(cluster: ClusterLab, host: LabHost, to: readonly Destination[], table = 'trellis_partition'): Promise<() => Promise<void>> {
  const rules = [
    `add table inet ${table}`,
    `add chain inet ${table} out { type filter hook output priority 0 ; policy accept ; }`,
    ...to.map((d) => `add rule inet ${table} out ip daddr ${d.address} tcp dport ${d.port} drop`),
  ].join('\n');
  await cluster.lab.exec(host.ns, 'sh', ['-c', `printf '%s\\n' '${rules}' | nft -f -`]);
  let healed = false;
  return async () => {
    if (healed) return;
    healed = true;
    await cluster.lab.exec(host.ns, 'nft', ['delete', 'table', 'inet', table]);
  };
}

/** Drops `host`'s packets to every etcd member (the endpoint is a comma-separated list with several) until the returned heal() runs. */
export function cutFromEtcd(cluster: ClusterLab, host: LabHost): Promise<() => Promise<void>> {
  return cutOff(cluster, host, cluster.endpoint.split(',').map((e) => new URL(e)).map((u) => ({ address: u.hostname, port: u.port })));
}
