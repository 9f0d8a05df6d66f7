// A node's identity record (<prefix>/v1/identities/<node>): its name, subnet,
// host IP and cloud instance id, written by the node when it registers and
// kept without a lease, so the node collector can still ask EC2 about a node
// whose leased node record has vanished. One small record per node name
// (about 200 bytes): 5,000 nodes keep about 1 MB, read only one key at a time
// for nodes whose record is gone.
// Invariants: like every record read from etcd it is checked before use: the
// record names its key, its host IP parses, and its instance id, when set,
// has EC2's form (i- and 8 or 17 hex digits); anything else is a reason, never
// an instance to ask about.

import { parseAddress } from '../core/cidr.js';
import { NodeIdentitySchema, type NodeIdentity } from '../gen/trellis/v1/records_pb.js';
import { decodeRecord, encodeRecord, makeRecord, msToTimestamp } from './records.js';
import type { Checked } from './validate.js';

export interface IdentityInfo {
  readonly name: string;
  readonly subnet: string;
  readonly hostIP: string;
  /** '' off the cloud. */
  readonly instanceId: string;
}

const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

/** The record text of a node's identity. */
export function encodeIdentity(info: IdentityInfo, now: number): string {
  return encodeRecord(NodeIdentitySchema, makeRecord(NodeIdentitySchema, { ...info, hostIp: info.hostIP, registeredAt: msToTimestamp(now) }));
}

/** Whether two identities say the same of a node. */
export function sameIdentity(a: IdentityInfo, b: IdentityInfo): boolean {
  return a.name === b.name && a.subnet === b.subnet && a.hostIP === b.hostIP && a.instanceId === b.instanceId;
}

/** Decodes and checks the identity record found under the key of `keyName`. */
export function checkIdentity(text: string, keyName: string): Checked<IdentityInfo> {
  const decoded = decodeRecord(NodeIdentitySchema, text);
  if (!decoded.ok) return decoded;
  const r: NodeIdentity = decoded.value;
  if (r.name !== keyName) return { ok: false, reason: `identity record under key ${keyName} names ${JSON.stringify(r.name)}` };
  try {
    parseAddress(r.hostIp);
  } catch {
    return { ok: false, reason: `identity of ${keyName}: bad hostIp ${JSON.stringify(r.hostIp)}` };
  }
  if (r.instanceId !== '' && !INSTANCE_ID.test(r.instanceId)) {
    return { ok: false, reason: `identity of ${keyName}: ${JSON.stringify(r.instanceId.slice(0, 40))} is not an EC2 instance id` };
  }
  return { ok: true, value: { name: r.name, subnet: r.subnet, hostIP: r.hostIp, instanceId: r.instanceId } };
}
