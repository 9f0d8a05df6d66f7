// Egress masquerade, the pure part: whether pod traffic leaving the pod
// network is source-translated to the host IP, and the nftables script that
// does it.
//
// Pod addresses lying outside the VPC's CIDR(s) cannot leave through an
// internet gateway (or a NAT gateway) un-translated: nothing outside knows a
// route back to them. So packets from the pod network to destinations outside
// both the pod network and the non-masquerade CIDRs leave with the host IP as
// their source.
//
// Invariants:
// * The script touches one table only, `ip <EGRESS_TABLE>`, owned by Trellis:
//   it is created, replaced or deleted as a whole in one `nft -f` transaction
//   (`table …` makes sure it exists, `delete table …` empties it, the new
//   definition follows); no other table, chain or ruleset is named.
// * Traffic between pod addresses is never translated (the pod network is
//   always among the excluded destinations).
// * Only IPv4 (`table ip`): the pod network of a masquerading node is IPv4.

import { ErrorCode, TrellisError } from '../errors.js';
import { aggregate, contains, formatPrefix, parseAddress, type Prefix } from './cidr.js';

/** The nftables table Trellis owns (family ip). */
export const EGRESS_TABLE = 'trellis';

export interface EgressDecision {
  /** True when pod egress is translated. */
  readonly masquerade: boolean;
  /** Why (for logs, /readyz detail and --check-config). */
  readonly reason: string;
}

export interface EgressInputs {
  /** egress.masquerade as configured; undefined = decide. */
  readonly configured: boolean | undefined;
  /** vpc.enabled */
  readonly vpcEnabled: boolean;
  /** The VPC's CIDR blocks (from the instance metadata); undefined when not known. */
  readonly vpcCidrs: readonly Prefix[] | undefined;
  /** The topology's pod network. */
  readonly podNetwork: Prefix;
}

/**
 * egress.masquerade as configured, else on exactly when the pod network is not
 * inside one of the VPC's CIDR blocks; off on a host with no VPC.
 */
export function decideMasquerade(i: EgressInputs): EgressDecision {
  const pods = formatPrefix(i.podNetwork);
  if (i.configured !== undefined) return { masquerade: i.configured, reason: `egress.masquerade is set to ${i.configured}` };
  if (!i.vpcEnabled) return { masquerade: false, reason: 'no VPC (vpc.enabled is false)' };
  if (i.podNetwork.family !== 4) return { masquerade: false, reason: `pod network ${pods} is not IPv4 (masquerade is IPv4 only)` };
  if (i.vpcCidrs === undefined || i.vpcCidrs.length === 0) return { masquerade: false, reason: 'the VPC CIDR blocks are not known' };
  const inside = i.vpcCidrs.find((c) => contains(c, i.podNetwork));
  if (inside !== undefined) return { masquerade: false, reason: `pod network ${pods} lies inside VPC CIDR ${formatPrefix(inside)}` };
  return { masquerade: true, reason: `pod network ${pods} lies outside the VPC CIDR(s) ${i.vpcCidrs.map(formatPrefix).join(', ')}` };
}

export interface EgressRules {
  /** Sources translated: the pod network. */
  readonly podNetwork: Prefix;
  /** Destinations never translated besides the pod network (egress.nonMasqueradeCidrs). */
  readonly nonMasquerade: readonly Prefix[];
  /** The address sources are translated to. */
  readonly hostIP: string;
}

/** The destinations left untranslated: the pod network and the non-masquerade CIDRs, merged (IPv4 only). */
export function untranslatedDestinations(r: EgressRules): Prefix[] {
  return aggregate([r.podNetwork, ...r.nonMasquerade].filter((p) => p.family === 4));
}

/** The postrouting rule, as `nft list` shows it (docs and logs). */
export function egressRule(r: EgressRules): string {
  return `ip saddr ${formatPrefix(r.podNetwork)} ip daddr != @untranslated counter snat to ${r.hostIP}`;
}

/** The `nft -f` script that installs (or atomically replaces) Trellis's egress table. */
export function egressScript(r: EgressRules): string {
  if (r.podNetwork.family !== 4) throw new TrellisError(ErrorCode.Config, `egress.masquerade needs an IPv4 pod network, got ${formatPrefix(r.podNetwork)}`);
  if (parseAddress(r.hostIP).family !== 4) throw new TrellisError(ErrorCode.Config, `egress.masquerade needs an IPv4 hostIP, got ${r.hostIP}`);
  const elements = untranslatedDestinations(r).map(formatPrefix).join(', ');
  return [
    `table ip ${EGRESS_TABLE}`,
    `delete table ip ${EGRESS_TABLE}`,
    `table ip ${EGRESS_TABLE} {`,
    '  set untranslated {',
    '    type ipv4_addr',
    '    flags interval',
    `    elements = { ${elements} }`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ${egressRule(r)}`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The `nft -f` script that removes Trellis's egress table, whether or not it exists. */
export function egressRemoveScript(): string {
  return `table ip ${EGRESS_TABLE}\ndelete table ip ${EGRESS_TABLE}\n`;
}
