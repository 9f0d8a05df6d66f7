// The drain record of a node, at <prefix>/v1/drain/<node> (proto NodeDrain):
// written by an operator's `trellisctl node drain`, deleted by `trellisctl
// node uncordon`, read by every VPC advertiser and BGP exporter (and by the
// drained node, which stops being a candidate for those roles).
// Invariants: a record is believed only when it decodes, names the node of
// its key and stays within its bounds (reason ≤ 256 characters, by ≤ 128, the
// whole value ≤ MAX_DRAIN_BYTES); anything else is a reason, never a throw.
// The key names the node, so only an admin credential may write it
// (docs/trust.md): no node role grants drain/.

import { NodeDrainSchema, type NodeDrain } from '../gen/trellis/v1/records_pb.js';
import { Keys } from './keys.js';
import { decodeRecord, encodeRecord, makeRecord, msToTimestamp, timestampToIso } from './records.js';

/** Largest drain record readers accept (readers skip larger values unread). */
export const MAX_DRAIN_BYTES = 1024;
export const MAX_DRAIN_REASON = 256;
export const MAX_DRAIN_BY = 128;

export interface DrainInfo {
  readonly node: string;
  /** ISO time of the drain ('' when the record has none). */
  readonly since: string;
  readonly reason: string;
  readonly by: string;
}

export type CheckedDrain = { ok: true; value: DrainInfo } | { ok: false; reason: string };

/** The record `trellisctl node drain` writes. */
export function makeDrain(node: string, reason: string, by: string, now: number): NodeDrain {
  return makeRecord(NodeDrainSchema, { node, since: msToTimestamp(now), reason, by });
}

export function encodeDrain(record: NodeDrain): string {
  return encodeRecord(NodeDrainSchema, record);
}

/** The drain record under `key` (a key under keys.drainPrefix()), checked. */
export function checkDrain(key: string, value: string): CheckedDrain {
  const bytes = Buffer.byteLength(value);
  if (bytes > MAX_DRAIN_BYTES) return { ok: false, reason: `drain record of ${bytes} bytes is above the ${MAX_DRAIN_BYTES}-byte limit` };
  const decoded = decodeRecord(NodeDrainSchema, value);
  if (!decoded.ok) return decoded;
  const r = decoded.value;
  const leaf = Keys.leaf(key);
  if (r.node !== leaf) return { ok: false, reason: `drain record under key ${leaf} names ${JSON.stringify(r.node.slice(0, 64))}` };
  if (r.reason.length > MAX_DRAIN_REASON) return { ok: false, reason: `drain record of ${leaf}: reason longer than ${MAX_DRAIN_REASON} characters` };
  if (r.by.length > MAX_DRAIN_BY) return { ok: false, reason: `drain record of ${leaf}: "by" longer than ${MAX_DRAIN_BY} characters` };
  return { ok: true, value: { node: r.node, since: timestampToIso(r.since), reason: r.reason, by: r.by } };
}
