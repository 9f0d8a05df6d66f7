// The etcd key layout, in one place. Every key Trellis reads or writes is
// built here from the configured prefix (default "/trellis"), so the layout
// documented in docs/state.md and in proto/trellis/v1/records.proto is the only
// one in use:
//   <prefix>/v1/topology
//   <prefix>/v1/nodes/<node>
//   <prefix>/v1/blocks/<a.b.c.d-len>
//   <prefix>/v1/blocks-held/<node>/<a.b.c.d-len>
//   <prefix>/v1/ipam/<node>/<a.b.c.d-len>/<address>
//   <prefix>/v1/routes/<subnet>/<node>
//   <prefix>/v1/advertisers/<subnet>/...
//   <prefix>/v1/collector/...
//   <prefix>/v1/identities/<node>
//   <prefix>/v1/vpc/<subnet>
//   <prefix>/v1/drain/<node>
// Names used in keys (node names, subnet ids) never contain "/".

import { ErrorCode, TrellisError } from '../errors.js';
import { parsePrefix, prefixKey, parsePrefixKey, type Prefix } from '../core/cidr.js';

export const DEFAULT_PREFIX = '/trellis';

const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

/** Throws a config error unless `name` can be used as one key segment. */
export function checkKeyName(kind: string, name: string): string {
  if (!namePattern.test(name)) {
    throw new TrellisError(
      ErrorCode.Config,
      `${kind} ${JSON.stringify(name)} is not usable in a key: use letters, digits, ".", "_" and "-" (start with a letter or digit)`,
    );
  }
  return name;
}

export class Keys {
  readonly root: string;

  constructor(prefix: string = DEFAULT_PREFIX) {
    const trimmed = prefix.replace(/\/+$/, '');
    if (!trimmed.startsWith('/') || trimmed.includes('//')) {
      throw new TrellisError(ErrorCode.Config, `etcd prefix ${JSON.stringify(prefix)} must be an absolute key path like /trellis`);
    }
    this.root = `${trimmed}/v1`;
  }

  topology(): string {
    return `${this.root}/topology`;
  }

  nodesPrefix(): string {
    return `${this.root}/nodes/`;
  }

  node(name: string): string {
    return `${this.nodesPrefix()}${name}`;
  }

  blocksPrefix(): string {
    return `${this.root}/blocks/`;
  }

  block(prefix: Prefix | string): string {
    const p = typeof prefix === 'string' ? parsePrefix(prefix) : prefix;
    return `${this.blocksPrefix()}${prefixKey(p)}`;
  }

  /** The block prefix named by a block key, or undefined for a foreign key. */
  blockFromKey(key: string): Prefix | undefined {
    if (!key.startsWith(this.blocksPrefix())) return undefined;
    try {
      return parsePrefixKey(key.slice(this.blocksPrefix().length));
    } catch {
      return undefined;
    }
  }

  /** Claims and holds together: one watch of this prefix sees a claim and its hold change in one batch. */
  claimsPrefix(): string {
    return `${this.root}/blocks`;
  }

  /** The holds of one node: its own record of each block it claimed (written and deleted with the claim). */
  holdsPrefix(node?: string): string {
    return node === undefined ? `${this.root}/blocks-held/` : `${this.root}/blocks-held/${node}/`;
  }

  hold(node: string, block: Prefix | string): string {
    const p = typeof block === 'string' ? parsePrefix(block) : block;
    return `${this.holdsPrefix(node)}${prefixKey(p)}`;
  }

  /** { node, prefix } named by a hold key, or undefined for a foreign key. */
  holdFromKey(key: string): { node: string; prefix: Prefix } | undefined {
    if (!key.startsWith(this.holdsPrefix())) return undefined;
    const parts = key.slice(this.holdsPrefix().length).split('/');
    if (parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
    try {
      return { node: parts[0], prefix: parsePrefixKey(parts[1]) };
    } catch {
      return undefined;
    }
  }

  /** Every pod address record of one node: the range only that node reads and writes. */
  ipamPrefix(node: string): string {
    return `${this.root}/ipam/${node}/`;
  }

  /** The pod address records of one block of a node. */
  ipamBlockPrefix(node: string, block: Prefix | string): string {
    const p = typeof block === 'string' ? parsePrefix(block) : block;
    return `${this.ipamPrefix(node)}${prefixKey(p)}/`;
  }

  /** The record of one pod address (allocated or resting) of a node's block. */
  podAddress(node: string, block: Prefix | string, address: string): string {
    return `${this.ipamBlockPrefix(node, block)}${address}`;
  }

  routesPrefix(subnet?: string): string {
    return subnet === undefined ? `${this.root}/routes/` : `${this.root}/routes/${subnet}/`;
  }

  route(subnet: string, node: string): string {
    return `${this.routesPrefix(subnet)}${node}`;
  }

  /** { subnet, node } named by an advertisement key. */
  routeFromKey(key: string): { subnet: string; node: string } | undefined {
    const rest = key.startsWith(this.routesPrefix()) ? key.slice(this.routesPrefix().length) : undefined;
    const parts = rest?.split('/');
    if (parts === undefined || parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
    return { subnet: parts[0], node: parts[1] };
  }

  /** Last path segment of a key (node name under nodes/, etc.). */
  static leaf(key: string): string {
    return key.slice(key.lastIndexOf('/') + 1);
  }

  advertisersPrefix(subnet: string): string {
    return `${this.root}/advertisers/${subnet}/`;
  }

  /** Candidacies of the cluster's node collector (daemon/node-collector.ts). */
  collectorPrefix(): string {
    return `${this.root}/collector/`;
  }

  identitiesPrefix(): string {
    return `${this.root}/identities/`;
  }

  /** A node's identity record (not leased: outlives its node record; daemon/node-identity.ts). */
  identity(node: string): string {
    return `${this.identitiesPrefix()}${node}`;
  }

  /** Candidates for the subnet's BGP exporter (election under node leases). */
  bgpExportersPrefix(subnet: string): string {
    return `${this.root}/bgp-exporters/${subnet}/`;
  }

  /** Drain records (one small record per drained node, written by an operator). */
  drainPrefix(): string {
    return `${this.root}/drain/`;
  }

  drain(node: string): string {
    return `${this.drainPrefix()}${node}`;
  }

  vpcPrefix(): string {
    return `${this.root}/vpc/`;
  }

  vpcStatus(subnet: string): string {
    return `${this.vpcPrefix()}${subnet}`;
  }
}
