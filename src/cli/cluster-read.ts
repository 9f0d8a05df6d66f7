// A consistent read of the Trellis state for inspection commands: the
// topology, nodes/, blocks/, routes/ and drain/ read in pages at a single etcd
// revision (any size fits), run through the same validation trellisd
// applies, so what trellisctl shows as valid is exactly what the daemons act
// on, and everything else is shown with its reason. A value too large to be
// a record is not decoded: it is listed as ignored with its size.

import type { IKeyValue } from 'etcd3';
import type { Topology } from '../core/topology.js';
import { BlockSchema, TopologySchema, type Block, type Topology as TopologyRecord } from '../gen/trellis/v1/records_pb.js';
import { ClusterView, type IgnoredRecord } from '../state/cluster-view.js';
import { decodeRecord } from '../state/records.js';
import { topologyFromRecord } from '../state/topology-record.js';
import { readPrefix } from '../etcd/paged-range.js';
import { drainsByNode, readDrains } from '../etcd/node-drain.js';
import type { DrainInfo } from '../state/drain-record.js';
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
  /** Decoded block records by etcd key (valid or not). */
  readonly blockRecords: ReadonlyMap<string, Block>;
  /** Lease id of each key (nodes and advertisements are leased). */
  readonly leases: ReadonlyMap<string, string>;
  /** Every key read under nodes/, blocks/, blocks-held/ and routes/, sorted, oversized ones included. */
  readonly recordKeys: readonly string[];
  /** Believed drain records by node name (the others are in `ignored`, kind drain). */
  readonly drains: ReadonlyMap<string, DrainInfo>;
}

interface RawRead {
  readonly key: string;
  readonly value: string;
  readonly modRevision: string;
  readonly createRevision: string;
  readonly lease: string;
}

export async function readSnapshot(session: EtcdSession): Promise<Snapshot> {
  const { client, keys } = session;
  const first = await client.get(keys.topology()).exec();
  const revision = String(first.header.revision);
  const ignored: IgnoredRecord[] = [];
  const entry = (kv: IKeyValue): RawRead => ({
    key: kv.key.toString(), value: kv.value.toString(), modRevision: String(kv.mod_revision), createRevision: String(kv.create_revision), lease: String(kv.lease),
  });
  const entries = first.kvs.map(entry);
  // blocks covers claims (blocks/) and holds (blocks-held/).
  for (const [prefix, kind] of [[keys.nodesPrefix(), 'node'], [keys.claimsPrefix(), 'block'], [keys.routesPrefix(), 'advertisement']] as const) {
    const page = await readPrefix(client, prefix, {
      revision,
      onOversize: (key, bytes) => ignored.push({ key, modRevision: revision, kind, cause: 'oversized', reason: `value of ${bytes} bytes is above the size limit` }),
    });
    for (const kv of page.kvs) entries.push(entry(kv));
  }
  const drainList = await readDrains(client, keys, revision);
  for (const d of drainList) if (!d.ok) ignored.push({ key: d.key, modRevision: revision, kind: 'drain', cause: 'invalid', reason: d.reason });
  const drains = drainsByNode(drainList);
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
  const view = topology === undefined ? undefined : new ClusterView(topology, keys, (r) => ignored.push(r));
  const blockRecords = new Map<string, Block>();
  const leases = new Map<string, string>();
  for (const e of entries) {
    view?.apply(e.key, e);
    if (e.lease !== '0') leases.set(e.key, e.lease);
    if (e.key.startsWith(keys.blocksPrefix())) {
      const decoded = decodeRecord(BlockSchema, e.value);
      if (decoded.ok) blockRecords.set(e.key, decoded.value);
    }
  }
  // Force validation of everything so `ignored` is complete.
  view?.nodes();
  view?.blocks();
  view?.advertisements();
  view?.conflicts();
  const recordKeys = [...new Set([...entries.filter((e) => e.key !== keys.topology()).map((e) => e.key), ...ignored.map((i) => i.key)])].sort();
  return { keys, revision, topology, topologyRecord, topologyProblem, view, ignored, blockRecords, leases, recordKeys, drains };
}
