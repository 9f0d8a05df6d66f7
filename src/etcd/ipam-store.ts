// The IPAM store in etcd: one Block record per claimed block under
// <prefix>/v1/blocks/<a.b.c.d-len>, stored as proto3 JSON, versioned by the
// key's mod revision. Every write is a single etcd transaction guarded by that
// revision (or by "does not exist yet" for a claim), which is what makes a
// block or an address impossible to own twice across hosts and processes.
// Records that cannot be decoded are still reported, as owned by nobody we
// know (INVALID_OWNER), so the allocator never claims over them.

import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from 'pino';
import { formatPrefix } from '../core/cidr.js';
import type { Allocation, BlockRecord, IpamStore, VersionedBlock } from '../core/ipam-store.js';
import { BlockSchema, type Block } from '../gen/trellis/v1/records_pb.js';
import type { Keys } from '../state/keys.js';
import { decodeRecord, encodeRecord, makeRecord, msToTimestamp, timestampToMs } from '../state/records.js';

/** Owner name given to block records that could not be decoded. */
export const INVALID_OWNER = '(invalid record)';

export function blockToRecord(block: Block): BlockRecord {
  const allocations: Record<string, Allocation> = {};
  for (const [address, a] of Object.entries(block.allocations)) {
    const allocation: Allocation = { containerId: a.containerId, ifName: a.ifName, allocatedAt: timestampToMs(a.allocatedAt) ?? 0 };
    if (a.netns !== '') allocation.netns = a.netns;
    if (a.podNamespace !== '') allocation.podNamespace = a.podNamespace;
    if (a.podName !== '') allocation.podName = a.podName;
    if (a.network !== '') allocation.network = a.network;
    allocations[address] = allocation;
  }
  const released: Record<string, number> = {};
  for (const [address, ts] of Object.entries(block.released)) released[address] = timestampToMs(ts) ?? 0;
  const record: BlockRecord = {
    prefix: block.prefix,
    subnet: block.subnet,
    node: block.node,
    claimedAt: timestampToMs(block.claimedAt) ?? 0,
    allocations,
    released,
  };
  const emptySince = timestampToMs(block.emptySince);
  if (emptySince !== undefined) record.emptySince = emptySince;
  return record;
}

export function recordToBlock(record: BlockRecord): Block {
  return makeRecord(BlockSchema, {
    prefix: record.prefix,
    subnet: record.subnet,
    node: record.node,
    claimedAt: msToTimestamp(record.claimedAt),
    allocations: Object.fromEntries(
      Object.entries(record.allocations).map(([address, a]) => [
        address,
        {
          containerId: a.containerId,
          ifName: a.ifName,
          netns: a.netns ?? '',
          podNamespace: a.podNamespace ?? '',
          podName: a.podName ?? '',
          network: a.network ?? '',
          allocatedAt: msToTimestamp(a.allocatedAt),
        },
      ]),
    ),
    released: Object.fromEntries(Object.entries(record.released).map(([address, ms]) => [address, msToTimestamp(ms)])),
    ...(record.emptySince !== undefined ? { emptySince: msToTimestamp(record.emptySince) } : {}),
  });
}

export class EtcdIpamStore implements IpamStore {
  /** Block records that could not be decoded, counted per read. */
  invalidRecords = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keys,
    private readonly log: Logger,
  ) {}

  private decode(kv: IKeyValue): VersionedBlock | undefined {
    const key = kv.key.toString();
    const prefix = this.keys.blockFromKey(key);
    if (prefix === undefined) return undefined;
    const decoded = decodeRecord(BlockSchema, kv.value.toString());
    const version = String(kv.mod_revision);
    if (decoded.ok && decoded.value.prefix === formatPrefix(prefix)) return { record: blockToRecord(decoded.value), version };
    this.invalidRecords++;
    this.log.warn({ key, reason: decoded.ok ? 'prefix differs from key' : decoded.reason }, 'ignoring invalid block record');
    return {
      record: { prefix: formatPrefix(prefix), subnet: '', node: INVALID_OWNER, claimedAt: 0, allocations: {}, released: {} },
      version,
    };
  }

  async listBlocks(): Promise<VersionedBlock[]> {
    const res = await this.client.getAll().prefix(this.keys.blocksPrefix()).exec();
    const out: VersionedBlock[] = [];
    for (const kv of res.kvs) {
      const v = this.decode(kv);
      if (v !== undefined) out.push(v);
    }
    return out;
  }

  async getBlock(prefix: string): Promise<VersionedBlock | undefined> {
    const res = await this.client.get(this.keys.block(prefix)).exec();
    const kv = res.kvs[0];
    return kv === undefined ? undefined : this.decode(kv);
  }

  async createBlock(record: BlockRecord): Promise<boolean> {
    const key = this.keys.block(record.prefix);
    const res = await this.client
      .if(key, 'Create', '==', 0)
      .then(this.client.put(key).value(encodeRecord(BlockSchema, recordToBlock(record))))
      .commit();
    return res.succeeded;
  }

  async updateBlock(record: BlockRecord, version: string): Promise<boolean> {
    const key = this.keys.block(record.prefix);
    const res = await this.client
      .if(key, 'Mod', '==', version)
      .then(this.client.put(key).value(encodeRecord(BlockSchema, recordToBlock(record))))
      .commit();
    return res.succeeded;
  }

  async deleteBlock(prefix: string, version: string): Promise<boolean> {
    const key = this.keys.block(prefix);
    const res = await this.client.if(key, 'Mod', '==', version).then(this.client.delete().key(key)).commit();
    return res.succeeded;
  }
}
