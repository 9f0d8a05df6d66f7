// A consistent read of the Trellis state for inspection commands (all but the
// pod address records): paged range reads at a single etcd revision, run through the same
// validation trellisd applies, so what trellisctl shows as valid is exactly
// what the daemons act on, and everything else is shown with its reason.

import type { Topology } from '../core/topology.js';
import { BlockSchema, TopologySchema, type Block, type Topology as TopologyRecord } from '../gen/trellis/v1/records_pb.js';
import { ClusterView, type IgnoredRecord } from '../state/cluster-view.js';
import { decodeRecord } from '../state/records.js';
import { topologyFromRecord } from '../state/topology-record.js';
import { readPrefix } from '../etcd/paged-range.js';
import type { EtcdSession } from './etcd-options.js';
import type { Keys } from '../state/keys.js';

export interface Snapshot {
  readonly keys: Keys;
  readonly revision: string;
  readonly topology: Topology | undefined;
  readonly topologyRecord: TopologyRecord | undefined;
  /** Why the stored topology is unusable, when it is. */
  readonly topologyProblem: string | undefined;
  readonly view: ClusterView | undefined;
  readonly ignored: readonly IgnoredRecord[];
  /** Decoded block records by prefix text (valid or not). */
  readonly blockRecords: ReadonlyMap<string, Block>;
  /** Lease id of each key (nodes and advertisements are leased). */
  readonly leases: ReadonlyMap<string, string>;
}

export async function readSnapshot(session: EtcdSession): Promise<Snapshot> {
  const { client, keys } = session;
  // Paged, at one revision; the pod address records under ipam/ are left to `trellisctl ipam`.
  const first = await readPrefix(client, keys.topology(), { maxValueBytes: Number.POSITIVE_INFINITY });
  const revision = first.revision;
  const kvs = [...first.kvs];
  for (const prefix of [keys.nodesPrefix(), keys.blocksPrefix(), keys.routesPrefix(), `${keys.root}/advertisers/`, keys.vpcPrefix()]) {
    kvs.push(...(await readPrefix(client, prefix, { revision, maxValueBytes: Number.POSITIVE_INFINITY })).kvs);
  }
  const entries = kvs.map((kv) => ({
    key: kv.key.toString(),
    value: kv.value.toString(),
    modRevision: String(kv.mod_revision),
    lease: String(kv.lease),
  }));
  const topoEntry = entries.find((e) => e.key === keys.topology());
  let topology: Topology | undefined;
  let topologyRecord: TopologyRecord | undefined;
  let topologyProblem: string | undefined;
  if (topoEntry === undefined) {
    topologyProblem = `no topology stored at ${keys.topology()} (run "trellisctl topology apply FILE")`;
  } else {
    const decoded = decodeRecord(TopologySchema, topoEntry.value);
    if (decoded.ok) topologyRecord = decoded.value;
    const checked = decoded.ok ? topologyFromRecord(decoded.value) : decoded;
    if (checked.ok) topology = checked.value;
    else topologyProblem = `stored topology is invalid: ${checked.reason}`;
  }
  const ignored: IgnoredRecord[] = [];
  const view = topology === undefined ? undefined : new ClusterView(topology, keys, (r) => ignored.push(r));
  const blockRecords = new Map<string, Block>();
  const leases = new Map<string, string>();
  for (const e of entries) {
    view?.apply(e.key, { value: e.value, modRevision: e.modRevision });
    if (e.lease !== '0') leases.set(e.key, e.lease);
    if (e.key.startsWith(keys.blocksPrefix())) {
      const decoded = decodeRecord(BlockSchema, e.value);
      if (decoded.ok) blockRecords.set(decoded.value.prefix, decoded.value);
    }
  }
  // Force validation of everything so `ignored` is complete.
  view?.nodes();
  view?.blocks();
  view?.advertisements();
  return { keys, revision, topology, topologyRecord, topologyProblem, view, ignored, blockRecords, leases };
}
