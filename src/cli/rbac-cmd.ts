// `trellisctl rbac apply`: creates the etcd roles and users of a cluster
// (src/state/rbac-plan.ts): trellis-admin, trellis-reader, and one role and
// user per node, so each node's credential writes only its own records.
// Idempotent: existing roles get their grants again (etcd merges them),
// existing users keep their password and are listed as "exists"; a password
// is printed only when its user is created. With --enable-auth, the root
// user (which etcd requires) is created with --root-password and
// authentication is turned on, after everything else is in place.

import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { TopologySchema } from '../gen/trellis/v1/records_pb.js';
import { prefixEnd } from '../etcd/paged-range.js';
import { ErrorCode, TrellisError } from '../errors.js';
import { clusterRoles, describeGrant, nodeRole, nodeRolePlan, type RolePlan } from '../state/rbac-plan.js';
import { checkKeyName } from '../state/keys.js';
import { decodeRecord } from '../state/records.js';
import { topologyFromRecord } from '../state/topology-record.js';
import { EXIT_OK, EXIT_USAGE, type CommandGroup, type LeafCommand } from './command.js';
import { etcdOptions, openEtcd } from './etcd-options.js';
import { formatData, isData, outputOption } from './output.js';

interface Created {
  readonly kind: 'role' | 'user' | 'auth';
  readonly name: string;
  readonly status: 'created' | 'exists' | 'enabled';
  readonly grants?: readonly string[];
  readonly roles?: readonly string[];
  /** Only for users created now. */
  readonly password?: string;
}

const exists = (err: unknown): boolean => /already exists/i.test((err as Error).message);

async function applyRole(client: Etcd3, plan: RolePlan): Promise<Created> {
  let status: Created['status'] = 'created';
  try {
    await client.auth.roleAdd({ name: plan.role });
  } catch (err) {
    if (!exists(err)) throw err;
    status = 'exists';
  }
  for (const g of plan.grants) {
    const key = Buffer.from(g.key ?? g.prefix ?? '');
    await client.auth.roleGrantPermission({
      name: plan.role,
      perm: { permType: g.permission, key, range_end: g.prefix !== undefined ? prefixEnd(g.prefix) : Buffer.alloc(0) },
    });
  }
  return { kind: 'role', name: plan.role, status, grants: plan.grants.map(describeGrant) };
}

async function applyUser(client: Etcd3, name: string, roles: readonly string[], password?: string): Promise<Created> {
  const secret = password ?? randomBytes(18).toString('base64url');
  let created = true;
  try {
    await client.auth.userAdd({ name, password: secret });
  } catch (err) {
    if (!exists(err)) throw err;
    created = false;
  }
  for (const role of roles) await client.auth.userGrantRole({ user: name, role });
  return { kind: 'user', name, status: created ? 'created' : 'exists', roles, ...(created && password === undefined ? { password: secret } : {}) };
}

async function topologySubnets(client: Etcd3, key: string): Promise<string[]> {
  const text = await client.get(key).string();
  if (text === null) throw new TrellisError(ErrorCode.Config, `no topology stored at ${key}: apply one first (node roles name every subnet's advertisement key)`);
  const decoded = decodeRecord(TopologySchema, text);
  const checked = decoded.ok ? topologyFromRecord(decoded.value) : decoded;
  if (!checked.ok) throw new TrellisError(ErrorCode.Config, `stored topology is invalid: ${checked.reason}`);
  return checked.value.zones.flatMap((z) => z.subnets.map((s) => s.id));
}

const applyCommand: LeafCommand = {
  kind: 'command',
  name: 'apply',
  summary: 'create the etcd roles and users of the cluster and of each node',
  args: '',
  positionals: { min: 0, max: 0 },
  options: {
    output: outputOption,
    nodes: { type: 'string', valueName: 'NAMES', doc: 'node names, comma-separated: one role and user trellis-node-NAME each' },
    'enable-auth': { type: 'boolean', doc: 'also create the root user and turn etcd authentication on' },
    'root-password': { type: 'string', valueName: 'PASSWORD', doc: 'password of the root user created by --enable-auth' },
    ...etcdOptions,
  },
  description:
    'Creates the roles trellis-admin (read and write every Trellis key) and\n' +
    'trellis-reader (read them), a user of each name, and for every node of\n' +
    '--nodes a role trellis-node-NAME and a user of the same name that may\n' +
    "write only that node's node record, advertisement, pod addresses and\n" +
    'holds, plus block claims and the VPC advertiser keys, and read every\n' +
    'Trellis key. Run it again after adding nodes or subnets. Passwords are\n' +
    'generated and printed once, when their user is created. See docs/trust.md.',
  examples: ['trellisctl rbac apply --nodes node-a,node-b', 'trellisctl rbac apply --nodes node-a --enable-auth --root-password "$ROOT_PW" -o json'],
  run: async (inv, io) => {
    const nodes = typeof inv.options.nodes === 'string' ? inv.options.nodes.split(',').map((n) => n.trim()).filter((n) => n !== '') : [];
    for (const n of nodes) checkKeyName('node name', n);
    const enable = inv.options['enable-auth'] === true;
    const rootPassword = inv.options['root-password'];
    if (enable && typeof rootPassword !== 'string') {
      io.stderr('trellisctl rbac apply: --enable-auth needs --root-password\n');
      return EXIT_USAGE;
    }
    const session = await openEtcd(inv.options);
    try {
      const { client, keys } = session;
      const subnets = nodes.length > 0 ? await topologySubnets(client, keys.topology()) : [];
      const out: Created[] = [];
      for (const plan of clusterRoles(keys)) {
        out.push(await applyRole(client, plan));
        out.push(await applyUser(client, plan.role, [plan.role]));
      }
      for (const n of nodes) {
        out.push(await applyRole(client, nodeRolePlan(keys, n, subnets)));
        out.push(await applyUser(client, nodeRole(n), [nodeRole(n)]));
      }
      if (enable) {
        out.push(await applyUser(client, 'root', ['root'], rootPassword as string));
        await client.auth.authEnable();
        out.push({ kind: 'auth', name: 'etcd', status: 'enabled' });
      }
      if (isData(inv.options.output)) io.stdout(formatData(inv.options.output, out));
      else {
        for (const c of out) {
          const what = c.kind === 'auth' ? 'authentication enabled' : `${c.kind} ${c.name}: ${c.status}`;
          io.stdout(`${what}${c.roles ? ` (roles ${c.roles.join(', ')})` : ''}${c.password ? `, password ${c.password}` : ''}\n`);
          for (const g of c.grants ?? []) io.stdout(`  ${g}\n`);
        }
      }
      return EXIT_OK;
    } finally {
      session.close();
    }
  },
};

export const rbacCommand: CommandGroup = {
  kind: 'group',
  name: 'rbac',
  summary: 'etcd users and roles: each node writes only its own records',
  description: 'Creates the etcd roles and users of a Trellis cluster (see docs/trust.md).',
  commands: [applyCommand],
  examples: ['trellisctl rbac apply --nodes node-a,node-b'],
};
