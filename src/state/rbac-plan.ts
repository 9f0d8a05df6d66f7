// The etcd roles Trellis needs (pure): what each credential may read and
// write, derived from the key layout (keys.ts), so that a node's credential
// can write only that node's own records plus the shared writes the
// protocol needs. See docs/trust.md.
//
//  * trellis-admin: read and write everything under <prefix>/v1/, which
//    includes what only an operator writes: the topology and the drain
//    records (drain/<node>, `trellisctl node drain`).
//  * trellis-reader: read everything under <prefix>/v1/ (trellisctl, monitoring).
//  * trellis-collector: read everything; remove what a dead node leaves
//    (block claims, holds, pod addresses, identity records) and take part in
//    the collector's election. It writes no node record and no advertisement.
//    trellisd uses it for collection only (gc.etcdUsername).
//  * trellis-node-<node>: read everything under <prefix>/v1/ (routing needs
//    every node, claim, hold and advertisement); write its node record, its
//    identity record, its advertisement key in every subnet of the topology, its pod addresses
//    (ipam/<node>/) and its holds (blocks-held/<node>/); plus the shared
//    ranges: block claims (blocks/, a free block is claimed by creating its
//    key; peers trust a claim only with the owner's hold, so a rewrite is a
//    conflict, not a takeover), the VPC advertiser election and status
//    (advertisers/, vpc/) and the node collector's election (collector/).
// Invariant: no node role grants a write on another node's node record,
// identity, advertisement, addresses or holds, nor on any drain record.

import type { Keys } from './keys.js';

export type Permission = 'Read' | 'Write' | 'Readwrite';

/** One grant: a single key, or every key starting with `prefix`. */
export interface Grant {
  readonly permission: Permission;
  readonly key?: string;
  readonly prefix?: string;
}

export interface RolePlan {
  readonly role: string;
  readonly grants: readonly Grant[];
}

export const ADMIN_ROLE = 'trellis-admin';
export const READER_ROLE = 'trellis-reader';
export const COLLECTOR_ROLE = 'trellis-collector';

/** Role (and user) name of a node. */
export function nodeRole(node: string): string {
  return `trellis-node-${node}`;
}

export function clusterRoles(keys: Keys): RolePlan[] {
  const all = `${keys.root}/`;
  return [
    { role: ADMIN_ROLE, grants: [{ permission: 'Readwrite', prefix: all }] },
    { role: READER_ROLE, grants: [{ permission: 'Read', prefix: all }] },
    {
      role: COLLECTOR_ROLE,
      grants: [
        { permission: 'Read', prefix: all },
        { permission: 'Readwrite', prefix: keys.blocksPrefix() },
        { permission: 'Readwrite', prefix: keys.holdsPrefix() },
        { permission: 'Readwrite', prefix: `${keys.root}/ipam/` },
        { permission: 'Readwrite', prefix: keys.identitiesPrefix() },
        { permission: 'Readwrite', prefix: keys.collectorPrefix() },
      ],
    },
  ];
}

/** The role of `node`; `subnets`: every subnet id of the topology (its advertisement key names one). */
export function nodeRolePlan(keys: Keys, node: string, subnets: readonly string[]): RolePlan {
  return {
    role: nodeRole(node),
    grants: [
      { permission: 'Read', prefix: `${keys.root}/` },
      { permission: 'Readwrite', key: keys.node(node) },
      { permission: 'Readwrite', key: keys.identity(node) },
      ...[...subnets].sort().map((s): Grant => ({ permission: 'Readwrite', key: keys.route(s, node) })),
      { permission: 'Readwrite', prefix: keys.ipamPrefix(node) },
      { permission: 'Readwrite', prefix: keys.holdsPrefix(node) },
      { permission: 'Readwrite', prefix: keys.blocksPrefix() },
      { permission: 'Readwrite', prefix: `${keys.root}/advertisers/` },
      { permission: 'Readwrite', prefix: keys.collectorPrefix() },
      { permission: 'Readwrite', prefix: keys.vpcPrefix() },
    ],
  };
}

/** A grant as text: "readwrite /trellis/v1/ipam/a/*". */
export function describeGrant(g: Grant): string {
  return `${g.permission.toLowerCase()} ${g.key ?? `${g.prefix ?? ''}*`}`;
}
