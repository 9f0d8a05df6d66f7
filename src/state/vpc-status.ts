// The VpcStatus record at <prefix>/v1/vpc/<subnet>: what the subnet's
// advertiser planned and found, written by the leader after each pass in
// which something changed (and at least every verification pass, so its
// `updatedAt` shows the leader is at work), and before any EC2 write with the
// plan about to be applied. Not leased: it outlives the leader. The next
// leader reads it to keep failed forwarders in recovery (hysteresis survives
// a change of leader), and every advertiser reads all of them to tell the
// entries Trellis made from routes somebody else made (table-state.ts).

import type { Etcd3 } from 'etcd3';
import { formatPrefix } from '../core/cidr.js';
import type { PlannedEntry } from '../core/vpc-plan.js';
import type { VpcEntry } from '../core/vpc-diff.js';
import { ForwarderHealthSchema, VpcRouteSchema, VpcStatusSchema, type VpcRoute, type VpcStatus } from '../gen/trellis/v1/records_pb.js';
import { create } from '@bufbuild/protobuf';
import type { Keys } from './keys.js';
import { decodeRecord, encodeRecord, makeRecord, msToTimestamp, timestampToMs } from './records.js';
import { entryKey } from '../core/vpc-table-state.js';
import { readPrefix } from '../etcd/paged-range.js';

/** The advertiser's verdict on one forwarder, as recorded in the status. */
export interface ForwarderVerdict {
  readonly node: string;
  readonly instanceId: string;
  readonly healthy: boolean;
  readonly consecutiveMisses: number;
  /** When the verdict last flipped (ms since the epoch), 0 when it never did. */
  readonly changedAt: number;
}

export interface StatusInput {
  readonly subnet: string;
  readonly leader: string;
  readonly plan: readonly PlannedEntry[];
  /** The subnet's entries in the tables after the pass, with node names where known. */
  readonly applied: readonly (VpcEntry & { node?: string })[];
  readonly forwarders: readonly ForwarderVerdict[];
  readonly lastError: string;
  readonly budgetExceeded: boolean;
  readonly extraHopShare: number;
  readonly warnings: readonly string[];
}

function route(e: VpcEntry & { node?: string; subnet?: string }, subnet: string): VpcRoute {
  return create(VpcRouteSchema, { table: e.table, destination: formatPrefix(e.destination), target: e.target, node: e.node ?? '', subnet: e.subnet ?? subnet });
}

export function makeStatus(input: StatusInput, now: number): VpcStatus {
  return makeRecord(VpcStatusSchema, {
    subnet: input.subnet,
    leader: input.leader,
    updatedAt: msToTimestamp(now),
    plan: input.plan.map((e) => route(e, input.subnet)),
    applied: input.applied.map((e) => route(e, input.subnet)),
    forwarders: input.forwarders.map((f) =>
      create(ForwarderHealthSchema, {
        node: f.node,
        instanceId: f.instanceId,
        healthy: f.healthy,
        consecutiveMisses: f.consecutiveMisses,
        ...(f.changedAt > 0 ? { changedAt: msToTimestamp(f.changedAt) } : {}),
      }),
    ),
    lastError: input.lastError,
    budgetExceeded: input.budgetExceeded,
    extraHopShare: input.extraHopShare,
    warnings: [...input.warnings],
  });
}

/** The record without its timestamp, to tell whether anything changed. */
export function statusFingerprint(status: VpcStatus): string {
  const copy: VpcStatus = { ...status, updatedAt: undefined, forwarders: status.forwarders.map((f) => ({ ...f, consecutiveMisses: 0 })) };
  return encodeRecord(VpcStatusSchema, copy);
}

export async function writeStatus(client: Etcd3, keys: Keys, status: VpcStatus): Promise<void> {
  await client.put(keys.vpcStatus(status.subnet)).value(encodeRecord(VpcStatusSchema, status)).exec();
}

/**
 * Every entry that any subnet's status record lists as planned or applied, as
 * entry keys (table-state.ts): the entries Trellis made or is about to make.
 * A record that does not decode contributes nothing.
 */
export async function readEntryHistory(client: Etcd3, keys: Keys): Promise<Set<string>> {
  const values = await readPrefix(client, keys.vpcPrefix(), { maxValueBytes: Number.MAX_SAFE_INTEGER });
  const out = new Set<string>();
  for (const kv of values.kvs) {
    const decoded = decodeRecord(VpcStatusSchema, kv.value.toString());
    if (!decoded.ok) continue;
    for (const r of [...decoded.value.plan, ...decoded.value.applied]) out.add(entryKey(r.subnet || decoded.value.subnet, r.table, r.destination, r.target));
  }
  return out;
}

/** Failed forwarders of the last status, with when they failed (ms). */
export async function readFailedForwarders(client: Etcd3, keys: Keys, subnet: string): Promise<Array<{ node: string; changedAt: number }>> {
  const text = await client.get(keys.vpcStatus(subnet)).string();
  if (text === null) return [];
  const decoded = decodeRecord(VpcStatusSchema, text);
  if (!decoded.ok) return [];
  return decoded.value.forwarders.filter((f) => !f.healthy).map((f) => ({ node: f.node, changedAt: timestampToMs(f.changedAt) ?? 0 }));
}
