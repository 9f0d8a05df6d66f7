// What peers believe about who holds a block and who may advertise (pure).
//
// A block claim lives in the shared key space blocks/<block>, which every
// node must be able to write (a free block is claimed by creating its key).
// So the claim alone cannot say who holds a block: any node could rewrite it.
// Each claim is therefore written together with a hold, blocks-held/<node>/<block>,
// in the node's own key range (only that node may write it), in the same etcd
// transaction; a release deletes both in one transaction. etcd stamps each
// key with the revision that created it, which no writer can choose.
//
// Rules (judgeClaim):
//  * The rightful holder of a block is the node whose hold for it was created
//    first. Nobody can create a hold for a block older than an existing one,
//    and the protocol removes a hold only with its claim, so a hold still
//    present means its node never released the block.
//  * The claim is consistent when it names the rightful holder and no other
//    node holds the block. Anything else is a conflict: the claim names
//    another node, is missing or unreadable while held, or another node holds
//    the block too. During a conflict the block is attributed to the rightful
//    holder (never to the node the claim names), who repairs the claim.
//  * A claim with no hold at all (written by a release that predates holds)
//    is believed as it stands, and marked unheld.
//
// And an advertisement counts (checkAdvertiser) only while its node has a
// live, valid node record under the same lease, and its next hop is that
// record's host IP in that record's subnet.

/** The claim record of one block, as read and checked. */
export interface ClaimFact {
  readonly owner: string;
  readonly createRevision: bigint;
}

/** One node's hold of a block. */
export interface HoldFact {
  readonly node: string;
  readonly createRevision: bigint;
}

export type ClaimVerdict =
  | { readonly holder: undefined }
  | { readonly holder: string; readonly conflict?: string; readonly unheld?: true };

/**
 * Who holds a block, given its claim (undefined when absent or unreadable)
 * and every hold of it.
 */
export function judgeClaim(claim: ClaimFact | undefined, holds: readonly HoldFact[]): ClaimVerdict {
  if (holds.length === 0) return claim === undefined ? { holder: undefined } : { holder: claim.owner, unheld: true };
  const sorted = [...holds].sort((a, b) => (a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  const first = sorted[0] as HoldFact;
  const rightful = first.node;
  const others = sorted.slice(1).map((h) => h.node);
  if (claim === undefined) return { holder: rightful, conflict: `claim missing or unreadable while ${rightful} holds the block (since revision ${first.createRevision})` };
  if (claim.owner !== rightful) {
    return { holder: rightful, conflict: `claim names ${claim.owner} but ${rightful} holds the block since revision ${first.createRevision} and never released it` };
  }
  if (others.length > 0) return { holder: rightful, conflict: `${others.join(', ')} also hold${others.length === 1 ? 's' : ''} the block, claimed by ${rightful} first` };
  return { holder: rightful };
}

/** An advertisement as far as the binding to its node matters. */
export interface AdvertiserFacts {
  readonly node: string;
  readonly subnet: string;
  readonly nextHop: string;
  /** etcd lease of the advertisement key ('0' for none). */
  readonly lease: string;
}

/** The node record the advertisement is bound to. */
export interface NodeFacts {
  readonly subnet: string;
  readonly hostIP: string;
  readonly lease: string;
}

/** undefined when the advertisement may stand for its node, otherwise why not. */
export function checkAdvertiser(a: AdvertiserFacts, node: NodeFacts | undefined): string | undefined {
  if (node === undefined) return `advertisement of ${a.node}: no valid node record for ${a.node}`;
  if (a.lease === '0' || a.lease === '') return `advertisement of ${a.node}: not written under a lease`;
  if (a.lease !== node.lease) return `advertisement of ${a.node}: lease ${a.lease} is not the lease ${node.lease} of its node record`;
  if (a.subnet !== node.subnet) return `advertisement of ${a.node}: subnet ${a.subnet} is not the subnet ${node.subnet} of its node record`;
  if (a.nextHop !== node.hostIP) return `advertisement of ${a.node}: next hop ${a.nextHop} is not the host IP ${node.hostIP} of its node record`;
  return undefined;
}
