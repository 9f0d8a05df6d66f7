// The IPAM store in etcd.
//
//   <prefix>/v1/blocks/<a.b.c.d-len>            Block claim, allocations/released empty
//   <prefix>/v1/blocks-held/<node>/<block>      The claim again, under <node>'s own keys: its hold
//   <prefix>/v1/ipam/<node>/<block>/<address>   PodAddress, written by <node> alone
//
// Claims keep the Block message shape of the old layout (older trellisd on
// other nodes decode them, and would drop a record with fields they do not
// know), with empty address maps; an old-layout claim that still carries
// addresses is reported with them (`legacy`) for its owner's migration and
// read as a plain claim by everybody else. Every write is one etcd
// transaction guarded by mod revisions ("does not exist yet" for a claim or a
// new address record), so an etcd revision moves by one per write, and a block
// or an address can never be owned twice across hosts and processes. A claim
// and its hold are created in one transaction and deleted in one (release),
// which is what lets peers tell a claim rewritten by someone else
// (src/core/claim-trust.ts). Reads of
// a node's addresses are one paged range of its own prefix. Records that
// cannot be decoded are counted and logged: a claim as owned by nobody we know
// (INVALID_OWNER), so nobody claims over it; an address record is skipped
// (its key stays, so it is never created over either).

import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from 'pino';
import { formatPrefix, parsePrefix } from '../core/cidr.js';
import type {
  AddressRecord,
  AddressSnapshot,
  Allocation,
  ClaimRecord,
  IpamStore,
  LegacyAddresses,
  StoredClaim,
  VersionedAddress,
} from '../core/ipam-store.js';
import { BlockSchema, PodAddressSchema, type Allocation as AllocationMessage, type Block } from '../gen/trellis/v1/records_pb.js';
import type { Keys } from '../state/keys.js';
import { decodeRecord, encodeRecord, makeRecord, msToTimestamp, timestampToMs } from '../state/records.js';
import { prefixEnd, readPrefix } from './paged-range.js';

/** Owner name given to block records that could not be decoded. */
export const INVALID_OWNER = '(invalid record)';

function toAllocation(a: AllocationMessage): Allocation {
  const allocation: Allocation = { containerId: a.containerId, ifName: a.ifName, allocatedAt: timestampToMs(a.allocatedAt) ?? 0 };
  if (a.netns !== '') allocation.netns = a.netns;
  if (a.podNamespace !== '') allocation.podNamespace = a.podNamespace;
  if (a.podName !== '') allocation.podName = a.podName;
  if (a.network !== '') allocation.network = a.network;
  return allocation;
}

function fromAllocation(a: Allocation) {
  return {
    containerId: a.containerId,
    ifName: a.ifName,
    netns: a.netns ?? '',
    podNamespace: a.podNamespace ?? '',
    podName: a.podName ?? '',
    network: a.network ?? '',
    allocatedAt: msToTimestamp(a.allocatedAt),
  };
}

/** The claim in a Block record, and the addresses an old-layout record still carries. */
export function blockToClaim(block: Block): { claim: ClaimRecord; legacy?: LegacyAddresses } {
  const claim: ClaimRecord = { prefix: block.prefix, subnet: block.subnet, node: block.node, claimedAt: timestampToMs(block.claimedAt) ?? 0 };
  if (Object.keys(block.allocations).length === 0 && Object.keys(block.released).length === 0) return { claim };
  const allocations: LegacyAddresses['allocations'] = {};
  for (const [address, a] of Object.entries(block.allocations)) allocations[address] = toAllocation(a);
  const released: LegacyAddresses['released'] = {};
  for (const [address, ts] of Object.entries(block.released)) released[address] = timestampToMs(ts) ?? 0;
  return { claim, legacy: { allocations, released } };
}

/** A claim as stored: the Block message with no addresses. */
export function claimToBlock(claim: ClaimRecord): Block {
  return makeRecord(BlockSchema, { prefix: claim.prefix, subnet: claim.subnet, node: claim.node, claimedAt: msToTimestamp(claim.claimedAt) });
}

export function encodeAddress(record: AddressRecord): string {
  return encodeRecord(
    PodAddressSchema,
    makeRecord(PodAddressSchema, {
      address: record.address,
      block: record.block,
      node: record.node,
      ...(record.allocation !== undefined ? { allocation: fromAllocation(record.allocation) } : {}),
      ...(record.releasedAt !== undefined ? { releasedAt: msToTimestamp(record.releasedAt) } : {}),
    }),
  );
}

/** An address record from its stored text, or the reason it is not one. */
export function decodeAddress(text: string): { ok: true; value: AddressRecord } | { ok: false; reason: string } {
  const decoded = decodeRecord(PodAddressSchema, text);
  if (!decoded.ok) return decoded;
  const m = decoded.value;
  const record: AddressRecord = { address: m.address, block: m.block, node: m.node };
  if (m.allocation !== undefined) record.allocation = toAllocation(m.allocation);
  else if (m.releasedAt !== undefined) record.releasedAt = timestampToMs(m.releasedAt) ?? 0;
  else return { ok: false, reason: 'neither allocated nor released' };
  return { ok: true, value: record };
}

export class EtcdIpamStore implements IpamStore {
  /** Records that could not be decoded, counted per read. */
  invalidRecords = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keys,
    private readonly log: Logger,
  ) {}

  async getClaim(prefix: string): Promise<StoredClaim | undefined> {
    const key = this.keys.block(prefix);
    const kv = (await this.client.get(key).exec()).kvs[0];
    if (kv === undefined) return undefined;
    const decoded = decodeRecord(BlockSchema, kv.value.toString());
    const version = String(kv.mod_revision);
    if (decoded.ok && decoded.value.prefix === formatPrefix(parsePrefix(prefix))) {
      return { ...blockToClaim(decoded.value), version };
    }
    this.invalid(key, decoded.ok ? 'prefix differs from key' : decoded.reason);
    return { claim: { prefix, subnet: '', node: INVALID_OWNER, claimedAt: 0 }, version };
  }

  async createClaim(claim: ClaimRecord, first?: AddressRecord): Promise<string | undefined> {
    const key = this.keys.block(claim.prefix);
    const range = this.keys.ipamBlockPrefix(claim.node, claim.prefix);
    const value = Buffer.from(encodeRecord(BlockSchema, claimToBlock(claim)));
    const success: object[] = [{ request_put: { key: Buffer.from(key), value } }, { request_put: { key: Buffer.from(this.keys.hold(claim.node, claim.prefix)), value } }];
    if (first === undefined) success.push(deleteRange(Buffer.from(range), prefixEnd(range)));
    else {
      // Left-overs of the node in this block go; one txn may not delete the key it puts.
      const firstKey = Buffer.from(this.keys.podAddress(first.node, first.block, first.address));
      success.push(
        deleteRange(Buffer.from(range), firstKey),
        deleteRange(Buffer.concat([firstKey, Buffer.from([0])]), prefixEnd(range)),
        { request_put: { key: firstKey, value: Buffer.from(encodeAddress(first)) } },
      );
    }
    const res = await this.client.kv.txn({
      compare: [{ key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: 0 }],
      success,
      failure: [],
    });
    return res.succeeded ? String(res.header.revision) : undefined;
  }

  async rewriteClaim(claim: ClaimRecord, version: string): Promise<string | undefined> {
    const key = this.keys.block(claim.prefix);
    const res = await this.client
      .if(key, 'Mod', '==', version)
      .then(this.client.put(key).value(encodeRecord(BlockSchema, claimToBlock(claim))))
      .commit();
    return res.succeeded ? String(res.header.revision) : undefined;
  }

  listAddresses(node: string): Promise<AddressSnapshot> {
    return this.readAddresses(this.keys.ipamPrefix(node));
  }

  listBlockAddresses(node: string, block: string): Promise<AddressSnapshot> {
    return this.readAddresses(this.keys.ipamBlockPrefix(node, block));
  }

  async createAddress(record: AddressRecord, claimVersion: string): Promise<string | undefined> {
    const key = this.keys.podAddress(record.node, record.block, record.address);
    const res = await this.client
      .if(this.keys.block(record.block), 'Mod', '==', claimVersion)
      .and(key, 'Create', '==', 0)
      .then(this.client.put(key).value(encodeAddress(record)))
      .commit();
    return res.succeeded ? String(res.header.revision) : undefined;
  }

  async updateAddress(record: AddressRecord, version: string, claimVersion: string): Promise<string | undefined> {
    const key = this.keys.podAddress(record.node, record.block, record.address);
    const res = await this.client
      .if(this.keys.block(record.block), 'Mod', '==', claimVersion)
      .and(key, 'Mod', '==', version)
      .then(this.client.put(key).value(encodeAddress(record)))
      .commit();
    return res.succeeded ? String(res.header.revision) : undefined;
  }

  async releaseBlock(node: string, prefix: string, claimVersion: string, revision: string): Promise<boolean> {
    const key = Buffer.from(this.keys.block(prefix));
    const range = this.keys.ipamBlockPrefix(node, prefix);
    const res = await this.client.kv.txn({
      compare: [
        { key, target: 'Mod', result: 'Equal', mod_revision: claimVersion },
        // Every address record of the block is as read at `revision` (none written since).
        { key: Buffer.from(range), range_end: prefixEnd(range), target: 'Mod', result: 'Less', mod_revision: String(BigInt(revision) + 1n) },
      ],
      success: [deleteRange(key, undefined), deleteRange(Buffer.from(this.keys.hold(node, prefix)), undefined), deleteRange(Buffer.from(range), prefixEnd(range))],
      failure: [],
    });
    return res.succeeded;
  }

  async deleteAddresses(node: string): Promise<void> {
    await this.client.delete().prefix(this.keys.ipamPrefix(node)).exec();
  }

  private async readAddresses(prefix: string): Promise<AddressSnapshot> {
    const page = await readPrefix(this.client, prefix, { onOversize: (key, bytes) => this.invalid(key, `value of ${bytes} bytes`) });
    const addresses: VersionedAddress[] = [];
    for (const kv of page.kvs) {
      const v = this.decode(kv);
      if (v !== undefined) addresses.push(v);
    }
    return { addresses, revision: page.revision };
  }

  private decode(kv: IKeyValue): VersionedAddress | undefined {
    const key = kv.key.toString();
    const decoded = decodeAddress(kv.value.toString());
    if (decoded.ok && key === this.keys.podAddress(decoded.value.node, decoded.value.block, decoded.value.address)) {
      return { record: decoded.value, version: String(kv.mod_revision) };
    }
    this.invalid(key, decoded.ok ? 'address, block or node differs from key' : decoded.reason);
    return undefined;
  }

  private invalid(key: string, reason: string): void {
    this.invalidRecords++;
    this.log.warn({ key, reason }, 'ignoring invalid IPAM record');
  }
}

function deleteRange(key: Buffer, rangeEnd: Buffer | undefined): object {
  return { request_delete_range: rangeEnd === undefined ? { key } : { key, range_end: rangeEnd } };
}
