// Turns etcd authentication on for a cluster lab the way docs/trust.md tells
// an operator to run a cluster: `trellisctl rbac apply --enable-auth` (run in
// the router namespace, where etcd listens) creates the roles and a user per
// node; each host's trellisd then connects as its own node user, and the
// lab's own etcdctl calls (ClusterLab.etcdctl) as root, since the lab plays
// the operator and, in hostile-record faults, a writer with every right.
// Call it after the lab is built and before the daemons start.

import { randomBytes } from 'node:crypto';
import type { ClusterLab, LabHost } from './cluster-lab.js';
import type { RbacItem } from './rbac-etcd.js';
import { bin } from './trellis.js';

/** Turns authentication on; returns the password of each user created (root included). */
export async function enableClusterAuth(cluster: ClusterLab, hosts: readonly LabHost[] = cluster.hosts): Promise<Map<string, string>> {
  if (cluster.etcdUser !== undefined) throw new Error('enableClusterAuth: authentication is already on');
  const rootPassword = randomBytes(12).toString('base64url');
  const out = await cluster.lab.exec(cluster.router, process.execPath, [
    bin('src/cli/trellisctl'), 'rbac', 'apply', '--nodes', hosts.map((h) => h.name).join(','),
    '--enable-auth', '--root-password', rootPassword, '-o', 'json', '--etcd-endpoints', cluster.endpoint,
  ]);
  const passwords = new Map<string, string>([['root', rootPassword]]);
  for (const c of JSON.parse(out) as RbacItem[]) if (c.kind === 'user' && c.password !== undefined) passwords.set(c.name, c.password);
  cluster.etcdUser = `root:${rootPassword}`;
  for (const h of hosts) {
    const user = `trellis-node-${h.name}`;
    const password = passwords.get(user);
    if (password === undefined) throw new Error(`enableClusterAuth: rbac apply created no user ${user}`);
    h.daemon.options.env = { ...(h.daemon.options.env ?? {}), TRELLIS_ETCD_USERNAME: user, TRELLIS_ETCD_PASSWORD: password };
  }
  return passwords;
}
