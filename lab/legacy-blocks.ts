// Old-layout Block records for tests and benchmarks: a claim that still
// carries every allocation of its block, as trellisd wrote them before the
// per-address records (a full /26 is about 17 KB).

import { parsePrefix, formatAddress } from '../src/core/cidr.js';
import { BlockSchema } from '../src/gen/trellis/v1/records_pb.js';
import { encodeRecord, makeRecord, msToTimestamp } from '../src/state/records.js';

/** A Block record of `node` with every address of `prefix` allocated. */
export function fullLegacyBlock(prefix: string, node: string, subnet: string): string {
  const p = parsePrefix(prefix);
  const allocations: Record<string, object> = {};
  for (let i = 0n; i < 1n << BigInt((p.family === 4 ? 32 : 128) - p.len); i++) {
    allocations[formatAddress({ family: p.family, addr: p.addr + i })] = {
      containerId: `${node}${'0'.repeat(40)}${String(i).padStart(24, '0')}`,
      ifName: 'eth0',
      netns: `/var/run/netns/cni-${'f'.repeat(32)}`,
      podNamespace: 'production-workloads',
      podName: `deployment-${node}-${i}-abcdefghij-klmno`,
      network: 'trellis',
      allocatedAt: msToTimestamp(1_700_000_000_000),
    };
  }
  return encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix, subnet, node, claimedAt: msToTimestamp(1_700_000_000_000), allocations }));
}
