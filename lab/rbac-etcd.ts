// A fresh etcd for the per-node credential tests: the sample topology
// seeded, then `trellisctl rbac apply --enable-auth` for the given nodes
// (root password ROOT_PASSWORD), authentication turned off again at
// teardown. Returns what rbac apply printed (users with their generated
// passwords, roles with their grants) and the environment that makes a
// trellisd connect as a node's own user. The caller asserts that the apply
// succeeded (`applied`); `created` is empty when it did not.

import type { Teardown } from './cleanup.js';
import { startEtcd, type EtcdServer } from './etcd.js';
import { runCli, seedTopology } from './trellis.js';

export const ROOT_PASSWORD = 'rootpw';

/** One line of `trellisctl rbac apply -o json`. */
export interface RbacItem {
  readonly kind: string;
  readonly name: string;
  readonly status?: string;
  readonly password?: string;
  readonly grants?: string[];
}

export interface RbacEtcd {
  readonly etcd: EtcdServer;
  readonly applied: { code: number; stdout: string; stderr: string };
  readonly created: RbacItem[];
  /** The generated password of `user` ('' when none was printed). */
  password(user: string): string;
  /** TRELLIS_ETCD_USERNAME/PASSWORD of node `node`'s own user. */
  nodeEnv(node: string): Record<string, string>;
}

export async function etcdWithRbac(t: Teardown, nodes: readonly string[]): Promise<RbacEtcd> {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const applied = runCli('src/cli/trellisctl', ['rbac', 'apply', '--nodes', nodes.join(','), '--enable-auth', '--root-password', ROOT_PASSWORD, '-o', 'json', '--etcd-endpoints', etcd.endpoint]);
  t.teardown(() => etcd.etcdctl(['--user', `root:${ROOT_PASSWORD}`, 'auth', 'disable']).catch(() => undefined));
  const created = applied.code === 0 ? (JSON.parse(applied.stdout) as RbacItem[]) : [];
  const password = (user: string): string => created.find((c) => c.kind === 'user' && c.name === user)?.password ?? '';
  return {
    etcd,
    applied,
    created,
    password,
    nodeEnv: (node) => ({ TRELLIS_ETCD_USERNAME: `trellis-node-${node}`, TRELLIS_ETCD_PASSWORD: password(`trellis-node-${node}`) }),
  };
}
