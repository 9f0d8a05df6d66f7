// trellisd's Prometheus metrics: one registry per daemon, every metric of
// its own named trellis_* and documented by its help text, beside the
// standard process_* and nodejs_* metrics of prom-client. Components get the
// metric objects they update; values that are cheaper to read on scrape
// (timestamps, counts kept elsewhere) are filled in by collect callbacks.
//
// Conventions (Prometheus naming): counters end in _total, units are in the
// name (_seconds, _bytes), points in time are Unix timestamps in seconds
// (0 while the event has not happened yet), never NaN.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { VERSION } from '../src/version.js';
import { IpamMetrics } from './ipam-metrics.js';

export interface MetricSources {
  /** When the last full reconcile pass ended (Unix ms), or undefined before the first. */
  lastFullSyncAt?: () => number | undefined;
  /** Valid advertisements currently seen, and raw records present. */
  advertisements?: () => { valid: number; records: number };
  /** Current lease state name. */
  leaseState?: () => string;
  /** Whether /readyz would answer ready. */
  ready?: () => boolean;
  /** Failed etcd operations since start, by source. */
  etcdErrors?: () => Record<string, number>;
}

export const LEASE_STATES = ['pending', 'alive', 'unconfirmed', 'lost', 'stopped'] as const;

export class Metrics {
  readonly registry = new Registry();
  readonly routesManaged: Gauge;
  readonly routeConflicts: Gauge;
  readonly reconcilePasses: Counter<'result'>;
  readonly reconcileDuration: Histogram;
  readonly routeChanges: Counter<'op'>;
  readonly ipam: IpamMetrics;
  readonly recordsIgnored: Counter<'kind' | 'reason'>;
  readonly claimConflicts: Counter;
  readonly claimRepairs: Counter<'result'>;
  readonly blockClaimFailures: Counter<'reason'>;
  readonly nodesCollected: Counter<'rule'>;
  readonly blocksLost: Counter;
  private sources: MetricSources = {};

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'trellis_build_info',
      help: 'Always 1; labels give the trellisd version and the Node.js version running it.',
      labelNames: ['version', 'node_version'],
      registers,
    }).set({ version: VERSION, node_version: process.version }, 1);
    this.routesManaged = new Gauge({ name: 'trellis_routes_managed', help: 'Kernel routes this agent wants and has installed (peers and own blocks).', registers });
    this.routeConflicts = new Gauge({ name: 'trellis_route_conflicts', help: 'Desired routes blocked by a route of another protocol for the same destination.', registers });
    this.reconcilePasses = new Counter({ name: 'trellis_reconcile_passes_total', help: 'Reconcile passes, by result.', labelNames: ['result'], registers });
    this.reconcileDuration = new Histogram({
      name: 'trellis_reconcile_duration_seconds',
      help: 'Duration of reconcile passes (list, diff, apply).',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.routeChanges = new Counter({ name: 'trellis_route_changes_total', help: 'Kernel route changes made, by operation.', labelNames: ['op'], registers });
    const sources = (): MetricSources => this.sources;
    new Gauge({
      name: 'trellis_last_full_sync_timestamp_seconds',
      help: 'Unix time at which the last complete reconcile pass (full list of kernel routes) ended; 0 before the first.',
      registers,
      collect() {
        const ms = sources().lastFullSyncAt?.();
        this.set(ms === undefined ? 0 : ms / 1000);
      },
    });
    new Gauge({
      name: 'trellis_advertisements',
      help: 'Advertisement records seen in etcd: valid ones, and all records.',
      labelNames: ['state'],
      registers,
      collect() {
        const a = sources().advertisements?.();
        if (a === undefined) return;
        this.set({ state: 'valid' }, a.valid);
        this.set({ state: 'records' }, a.records);
      },
    });
    this.recordsIgnored = new Counter({
      name: 'trellis_records_ignored_total',
      help: 'Records read from etcd and ignored since start, by kind (node, block, hold, advertisement, advertised-prefix) and reason (undecodable, invalid, oversized); each record revision counted once.',
      labelNames: ['kind', 'reason'],
      registers,
    });
    this.claimConflicts = new Counter({
      name: 'trellis_claim_conflicts_total',
      help: 'Block claims seen to disagree with their holds (a claim rewritten, deleted or doubled outside the protocol), each new conflict state counted once.',
      registers,
    });
    this.claimRepairs = new Counter({
      name: 'trellis_claim_repairs_total',
      help: "This node's rewrites of its own block claims found rewritten or deleted by someone else, by result (ok, lost, error).",
      labelNames: ['result'],
      registers,
    });
    for (const kind of ['node', 'block', 'hold', 'advertisement', 'advertised-prefix']) {
      for (const reason of ['undecodable', 'invalid', 'oversized']) this.recordsIgnored.inc({ kind, reason }, 0);
    }
    this.blockClaimFailures = new Counter({
      name: 'trellis_block_claim_failures_total',
      help: 'Failed tries to claim the first block at start-up (the node stays unregistered and not ready meanwhile), by reason (exhausted, conflict, unavailable, error).',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['exhausted', 'conflict', 'unavailable', 'error']) this.blockClaimFailures.inc({ reason }, 0);
    this.nodesCollected = new Counter({
      name: 'trellis_nodes_collected_total',
      help: "Dead nodes whose blocks and pod addresses this trellisd gave back as the cluster's elected collector, by rule (ec2-terminated, dead-node-after).",
      labelNames: ['rule'],
      registers,
    });
    this.nodesCollected.inc({ rule: 'dead-node-after' }, 0);
    this.nodesCollected.inc({ rule: 'ec2-terminated' }, 0);
    this.blocksLost = new Counter({
      name: 'trellis_blocks_lost_total',
      help: 'Blocks taken from this node while it held them (collected or removed, e.g. while it was cut off from etcd); each one withdrawn at once.',
      registers,
    });
    new Gauge({
      name: 'trellis_lease_state',
      help: "State of this node's etcd lease (1 for the current state).",
      labelNames: ['state'],
      registers,
      collect() {
        const now = sources().leaseState?.();
        for (const s of LEASE_STATES) this.set({ state: s }, s === now ? 1 : 0);
      },
    });
    const etcdErrorsSeen = new Map<string, number>();
    new Counter({
      name: 'trellis_etcd_errors_total',
      help: 'Failed etcd operations since start, by source (publish, watch, lease).',
      labelNames: ['source'],
      registers,
      collect() {
        // The sources keep their own counts: add what they counted since the last scrape.
        for (const [source, n] of Object.entries(sources().etcdErrors?.() ?? {})) {
          const before = etcdErrorsSeen.get(source) ?? 0;
          this.inc({ source }, Math.max(0, n - before));
          etcdErrorsSeen.set(source, Math.max(n, before));
        }
      },
    });
    new Gauge({
      name: 'trellis_ready',
      help: '1 once the first full sync from etcd and the first reconcile pass are done.',
      registers,
      collect() {
        this.set(sources().ready?.() === true ? 1 : 0);
      },
    });
    this.ipam = new IpamMetrics(this.registry);
  }

  setSources(sources: MetricSources): void {
    this.sources = { ...this.sources, ...sources };
  }
}
