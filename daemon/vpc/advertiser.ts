// The VPC advertiser of one subnet: while this node is the subnet's elected
// leader, keep the subnet's entries in every route table of the topology equal
// to the plan (docs/vpc.md, "Route planning").
//
// A pass: judge the subnet's forwarders (probe the ones never judged) → read
// the tables (DescribeRouteTables, see below) → classify routes (Trellis's
// entries, foreign routes) → plan for the whole cluster → keep this subnet's
// entries → diff against this subnet's current entries → order the delta
// reachability first (vpc-reach-order.ts: repoints off failed forwarders,
// then covering entries, then optimisation; a temporary covering "scaffold"
// entry when many nodes joined at once) → confirm leadership with a fresh etcd read before every
// batch of writes, and check the lease-backed gate before every single write
// → apply → write the status record.
// Reading: a pass first plans against the tables as last read (updated with
// our own writes); only when that plan wants a change, or the last read is
// older than vpc.verifyInterval, does it read the tables again (and plans
// again on what it read). So steady state costs one DescribeRouteTables per
// verification interval and no write; passes run on etcd changes, forwarder
// verdict changes, leadership and the verification timer.
// Invariants: nothing is written unless isLeader() holds at that moment and a
// fresh read confirmed leadership at the start of the batch; a failed create
// or replace in a table cancels that table's deletes for the pass (no address
// loses its route because its new one could not be made); a failed pass is
// retried with backoff.
// The status lists the entries Trellis owns (its history): a pass that fails
// before it has planned or read the tables publishes the last plan and entries
// of this leadership term, and publishes nothing if the term has none yet, so
// a failed read never erases the record (a successor would take the
// entries for somebody else's).

import type { Logger } from 'pino';
import { Backoff } from '../../src/core/backoff.js';
import { contains, formatPrefix, type Prefix } from '../../src/core/cidr.js';
import { allSubnets, routeTables } from '../../src/core/topology.js';
import { diffVpcEntries, planVpcRoutes, type Plan, type PlannedEntry, type PlanNode, type VpcEntry, type VpcStep } from '../../src/core/vpc-plan.js';
import { describeError } from '../../src/errors.js';
import type { VpcStatus } from '../../src/gen/trellis/v1/records_pb.js';
import { compareEntry } from '../../src/core/vpc-diff.js';
import type { TableRoom } from '../../src/core/vpc-apply-order.js';
import { orderForReach } from '../../src/core/vpc-reach-order.js';
import type { DescribeResult } from '../../src/aws/ec2-routes.js';
import type { ElectionState } from '../election.js';
import type { Candidate, ForwarderHealth } from './health.js';
import type { VpcMetrics } from './metrics.js';
import { describeEntry, planNodes, subnetExtraHopShare, type ClusterState } from './plan-input.js';
import { makeStatus, statusFingerprint } from '../../src/state/vpc-status.js';
import { classifyTable, ownedBy, subnetEntries, type TableState } from '../../src/core/vpc-table-state.js';

/** The EC2 side (Ec2Routes, or a fake in tests). */
export interface RouteTables {
  /** `instances`: the cluster's, whose primary-interface routes count as routes to them. */
  describe(names: readonly string[], instances?: readonly string[]): Promise<DescribeResult>;
  apply(step: VpcStep, tableId: string, network: Prefix): Promise<void>;
}

/** The election side (AdvertiserElection). */
export interface Leadership {
  readonly state: ElectionState;
  isLeader(): boolean;
  confirm(): Promise<boolean>;
  on(event: 'state', listener: (state: ElectionState) => void): unknown;
}

export interface AdvertiserOptions {
  readonly subnet: string;
  readonly node: string;
  readonly election: Leadership;
  readonly tables: RouteTables;
  readonly health: ForwarderHealth;
  /** The validated cluster, or undefined until the view from etcd is complete. */
  readonly cluster: () => ClusterState | undefined;
  readonly routeLimit: number;
  readonly verifyIntervalMs: number;
  readonly writeStatus: (status: VpcStatus) => Promise<void>;
  /**
   * The entries every subnet's status record lists (status.ts readEntryHistory):
   * which instance routes of the tables Trellis made. Without it every instance
   * route inside a subnet's pod prefix counts as Trellis's, and no plan is
   * recorded before writing.
   */
  readonly history?: () => Promise<ReadonlySet<string>>;
  /** Failed forwarders of the previous leader's status, to keep them in recovery. */
  readonly previousFailures?: () => Promise<Array<{ node: string; changedAt: number }>>;
  readonly metrics?: VpcMetrics;
  readonly log: Logger;
  readonly now?: () => number;
  /** Steps written between two leadership confirmations (default 10). */
  readonly batchSize?: number;
}

interface Planned {
  readonly plan: Plan;
  readonly nodes: PlanNode[];
  /** This subnet's entries of the plan that it will make. */
  readonly mine: PlannedEntry[];
  /** This subnet's entries in the tables now. */
  readonly current: VpcEntry[];
  /** Why planned entries were left out (their destination is held by a route to a live node). */
  readonly blocked: string[];
}

interface Snapshot {
  readonly at: number;
  states: TableState[];
  readonly missing: readonly string[];
}

export class VpcAdvertiser {
  private snapshot: Snapshot | undefined;
  private running: Promise<void> | undefined;
  private dirty = false;
  private forceRead = false;
  private timer: NodeJS.Timeout | undefined;
  private verifyTimer: NodeJS.Timeout | undefined;
  private readonly retry: Backoff;
  private stopped = false;
  private lastStatus = '';
  private lastStatusAt = 0;
  private lastWarnings = '';
  /** This leadership term's last plan and last read entries of the subnet (kept in the status while a pass fails early). */
  private lastMine: PlannedEntry[] | undefined;
  private lastApplied: VpcEntry[] | undefined;
  /** Completed passes (ok or not), for tests and metrics. */
  passes = 0;
  lastPassAt: number | undefined;
  lastError = '';
  lastPlan: Plan | undefined;
  entriesOwned = 0;
  private readonly now: () => number;

  constructor(private readonly options: AdvertiserOptions) {
    this.now = options.now ?? Date.now;
    // A failed pass is retried after 1 s, doubling up to the verify interval; a pass that succeeds resets it.
    this.retry = new Backoff({ initialMs: 1000, maxMs: options.verifyIntervalMs });
    options.election.on('state', (s) => this.leadershipChanged(s));
    options.health.on('change', () => this.markDirty());
    if (options.election.state === 'leader') this.leadershipChanged('leader');
    options.metrics?.setSources({
      leader: () => options.election.isLeader(),
      entriesOwned: () => this.entriesOwned,
      lastPassAt: () => this.lastPassAt,
      budgetExceeded: () => this.lastPlan?.budgetExceeded === true,
      forwarders: () => {
        const v = options.health.verdicts();
        return { healthy: v.filter((f) => f.healthy).length, failed: v.filter((f) => !f.healthy).length };
      },
      unmanaged: () => (this.snapshot?.states ?? []).reduce((n, s) => n + s.unmanaged.length, 0),
    });
  }

  /** Something in etcd changed: plan again soon (bursts are coalesced). */
  markDirty(force = false): void {
    if (this.stopped) return;
    this.dirty = true;
    this.forceRead ||= force;
    if (this.timer !== undefined || this.running !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, 50);
  }

  /** Runs passes until nothing is dirty; resolves when idle. */
  run(): Promise<void> {
    this.running ??= (async () => {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        const force = this.forceRead;
        this.forceRead = false;
        await this.pass(force);
      }
    })().finally(() => {
      this.running = undefined;
      if (this.dirty && !this.stopped) this.markDirty();
    });
    return this.running;
  }

  private leadershipChanged(state: ElectionState): void {
    const { health, log } = this.options;
    if (state === 'leader') {
      void (async () => {
        for (const f of (await this.options.previousFailures?.().catch(() => [])) ?? []) health.seedFailed(f.node, f.changedAt);
        if (this.options.election.state !== 'leader' || this.stopped) return; // stepped down meanwhile
        health.start();
        this.verifyTimer ??= setInterval(() => this.markDirty(true), this.options.verifyIntervalMs);
        this.verifyTimer.unref?.();
        this.markDirty(true);
      })();
    } else {
      if (this.verifyTimer !== undefined) clearInterval(this.verifyTimer);
      this.verifyTimer = undefined;
      health.stop();
      this.snapshot = undefined;
      this.lastMine = undefined;
      this.lastApplied = undefined;
      if (state === 'follower') log.info('not the VPC advertiser of the subnet: no EC2 writes');
    }
  }

  private candidates(cluster: ClusterState): Candidate[] {
    return [...cluster.nodes.values()]
      .filter((n) => n.subnet.id === this.options.subnet && n.instanceId !== '')
      .map((n) => ({ name: n.name, instanceId: n.instanceId, endpoint: n.healthEndpoint }));
  }

  private async read(names: readonly string[], cluster: ClusterState): Promise<Snapshot> {
    // Routes to the interface of any instance Trellis routes to, live or not, read as routes to that instance:
    // the live nodes', and every target the statuses list (so entries of nodes that are down stay Trellis's).
    const history = await this.options.history?.();
    const instances = new Set([...cluster.nodes.values()].map((n) => n.instanceId).filter((id) => id !== ''));
    for (const key of history ?? []) instances.add(key.slice(key.lastIndexOf('|') + 1));
    const result = await this.options.tables.describe(names, [...instances]);
    const isTrellis = history === undefined ? undefined : ownedBy(history);
    return { at: this.now(), states: result.tables.map((t) => classifyTable(cluster.topology, t, isTrellis)), missing: result.missing };
  }

  private plan(cluster: ClusterState, snap: Snapshot): Planned {
    const { subnet, health, routeLimit } = this.options;
    const nodes = planNodes(cluster, subnet, (n) => health.healthy(n));
    const current = subnetEntries(snap.states, subnet);
    const plan = planVpcRoutes({
      topology: cluster.topology,
      nodes,
      tables: snap.states.map((s) => ({ id: s.table, limit: routeLimit, foreign: s.foreign })),
      current,
    });
    const present = new Set(snap.states.map((s) => s.table));
    // A destination held by a route Trellis did not make is taken over only
    // when that route's target is not a live node; otherwise it stays, and
    // Trellis's entry for it is not made (reported).
    const live = new Map([...cluster.nodes.values()].filter((n) => n.instanceId !== '').map((n) => [n.instanceId, n.name]));
    const held = new Map<string, string>();
    for (const st of snap.states) {
      for (const u of st.unmanaged) {
        const node = u.instanceId === undefined ? undefined : live.get(u.instanceId);
        if (node !== undefined) held.set(`${u.table}|${u.destination}`, `route ${u.destination} → ${u.target} in ${u.table} was not made by Trellis and targets live node ${node}: left in place, Trellis's entry for it is not made`);
      }
    }
    const blocked: string[] = [];
    const mine = plan.entries.filter((e) => {
      if (e.subnet !== subnet || !present.has(e.table)) return false;
      const why = held.get(`${e.table}|${formatPrefix(e.destination)}`);
      if (why !== undefined) blocked.push(why);
      return why === undefined;
    });
    return { plan, nodes, mine, current, blocked };
  }

  private async pass(forceRead: boolean): Promise<void> {
    const { election, health, subnet, log } = this.options;
    const cluster = this.options.cluster();
    if (!election.isLeader() || cluster === undefined) return;
    health.setCandidates(this.candidates(cluster));
    if (health.hasUnjudged()) await health.probeAll();
    const names = routeTables(cluster.topology);
    let error = '';
    let planned: Planned | undefined;
    try {
      const known = this.snapshot === undefined ? '' : [...this.snapshot.states.map((x) => x.table), ...this.snapshot.missing].sort().join();
      const stale = known !== [...names].sort().join() || forceRead || this.now() - (this.snapshot?.at ?? 0) >= this.options.verifyIntervalMs;
      if (stale) this.snapshot = await this.read(names, cluster);
      let snap = this.snapshot as Snapshot;
      planned = this.plan(cluster, snap);
      if (!stale && diffVpcEntries({ entries: planned.mine }, planned.current).steps.length > 0) {
        this.snapshot = snap = await this.read(names, cluster);
        planned = this.plan(cluster, snap);
      }
      this.lastPlan = planned.plan;
      const failed = await this.apply(cluster, snap, planned);
      if (failed !== '') error = failed;
      this.retry.reset();
      this.options.metrics?.passes.inc({ result: error === '' ? 'ok' : 'error' });
    } catch (err) {
      error = describeError(err);
      this.snapshot = undefined;
      this.options.metrics?.passes.inc({ result: 'error' });
    }
    this.passes++;
    this.lastPassAt = this.now();
    if (error !== '' && error !== this.lastError) log.warn({ subnet, err: error }, 'VPC advertiser pass failed; retrying');
    this.lastError = error;
    if (error !== '') this.scheduleRetry();
    if (election.isLeader() && (planned !== undefined || this.lastMine !== undefined)) await this.publish(cluster, planned, error);
  }

  /** Applies the delta; returns "" or the first error. Updates the snapshot with every write made. */
  private async apply(cluster: ClusterState, snap: Snapshot, planned: Planned): Promise<string> {
    const { election, tables, log } = this.options;
    const delta = diffVpcEntries({ entries: planned.mine }, planned.current);
    if (delta.steps.length === 0) return '';
    const room = new Map<string, TableRoom>(snap.states.map((s) => [s.table, { limit: this.options.routeLimit, total: s.total }]));
    const present = snap.states.flatMap((s) => s.owned);
    const live = new Set(planned.nodes.filter((n) => n.healthy && n.instanceId !== '').map((n) => n.instanceId));
    const pod = allSubnets(cluster.topology).find((s) => s.id === this.options.subnet)?.podPrefix;
    const steps = orderForReach({ delta, room, present, live, podPrefixOf: (p) => (pod !== undefined && contains(pod, p) ? pod : undefined) });
    if (this.options.history !== undefined) {
      // Record the plan first (with any scaffold entry): the entries about to be
      // written must be known as Trellis's even if this process dies before
      // its next status write.
      if (!election.isLeader()) return 'lost leadership during the pass';
      const byInstance = new Map([...cluster.nodes.values()].map((n) => [n.instanceId, n.name]));
      const scaffolds = steps.filter((s) => s.scaffold === true && s.kind === 'create').map((s) => ({ ...s.entry, node: byInstance.get(s.entry.target) ?? '', subnet: this.options.subnet }));
      try {
        await this.options.writeStatus(this.status(cluster, { ...planned, mine: [...planned.mine, ...scaffolds] }, ''));
      } catch (err) {
        return `recording the plan in etcd before writing to EC2: ${describeError(err)}`;
      }
    }
    const ids = new Map(snap.states.map((s) => [s.table, s.id]));
    const brokenTables = new Set<string>();
    const batchSize = this.options.batchSize ?? 10;
    let firstError = '';
    for (let i = 0; i < steps.length; i++) {
      if (i % batchSize === 0 && !(await election.confirm())) {
        log.warn({ remaining: steps.length - i }, 'leadership not confirmed: stopped before writing to EC2');
        return firstError || 'lost leadership during the pass';
      }
      if (!election.isLeader()) {
        log.warn({ remaining: steps.length - i }, 'no longer the advertiser: stopped writing to EC2');
        return firstError || 'lost leadership during the pass';
      }
      const step = steps[i] as (typeof steps)[number];
      if (step.kind === 'delete' && brokenTables.has(step.entry.table)) continue;
      if (step.scaffold === true) log.info({ op: step.kind, entry: describeEntry(step.entry) }, 'temporary covering entry while the new entries are written');
      if (step.forced === true) log.warn({ entry: describeEntry(step.entry) }, 'route table full: deleting an entry before its replacement exists');
      try {
        await tables.apply(step, ids.get(step.entry.table) as string, cluster.topology.network);
        this.record(snap, step);
        log.info({ op: step.kind, entry: describeEntry(step.entry) }, 'VPC route changed');
      } catch (err) {
        firstError ||= `${step.kind} ${describeEntry(step.entry)}: ${describeError(err)}`;
        if (step.kind !== 'delete') brokenTables.add(step.entry.table);
      }
    }
    return firstError;
  }

  /** Reflects one applied step in the snapshot (so the next pass plans on what the tables hold). */
  private record(snap: Snapshot, step: VpcStep): void {
    const { subnet } = this.options;
    snap.states = snap.states.map((s) => {
      if (s.table !== step.entry.table) return s;
      const same = (e: VpcEntry): boolean => formatPrefix(e.destination) === formatPrefix(step.entry.destination);
      const had = s.owned.some(same);
      const owned = s.owned.filter((e) => !same(e));
      if (step.kind !== 'delete') owned.push({ ...step.entry, subnet });
      const total = s.total + (step.kind === 'create' && !had ? 1 : 0) - (step.kind === 'delete' && had ? 1 : 0);
      return { ...s, owned, total };
    });
  }

  private warnings(cluster: ClusterState, planned: Planned | undefined): string[] {
    const { subnet } = this.options;
    const out: string[] = [...(planned?.blocked ?? [])];
    for (const u of planned?.plan.uncovered ?? []) if (u.subnet === subnet || u.reason === 'over-budget') out.push(u.message);
    for (const d of planned?.plan.drainKept ?? []) if (d.subnet === subnet) out.push(d.message);
    for (const n of cluster.draining ?? []) if (cluster.nodes.get(n)?.subnet.id === subnet) out.push(`node ${n} is draining (trellisctl node uncordon ${n} ends it)`);
    for (const t of this.snapshot?.missing ?? []) out.push(`route table ${t} of the topology does not exist in EC2`);
    for (const s of this.snapshot?.states ?? []) {
      for (const u of s.unmanaged) {
        if (u.subnet === subnet || u.subnet === undefined) out.push(`route ${u.destination} → ${u.target} in ${u.table} is in the pod network but was not made by Trellis`);
      }
    }
    for (const n of cluster.nodes.values()) {
      if (n.subnet.id !== subnet) continue;
      if (n.instanceId === '') out.push(`node ${n.name} has no instance id: it cannot forward`);
      else if (n.healthEndpoint === '') out.push(`node ${n.name} publishes no health endpoint (http.listen is loopback): judged by its lease alone`);
    }
    return [...new Set(out)];
  }

  private async publish(cluster: ClusterState, planned: Planned | undefined, error: string): Promise<void> {
    const { subnet, log } = this.options;
    const status = this.status(cluster, planned, error);
    const warnings = status.warnings;
    const text = warnings.join('\n');
    if (text !== this.lastWarnings) {
      this.lastWarnings = text;
      if (planned?.plan.budgetExceeded === true) log.warn({ subnet, warnings }, 'VPC route budget exceeded: some subnets get no entry, their pods are not routed');
      else if (warnings.length > 0) log.warn({ subnet, warnings }, 'VPC advertiser warnings');
    }
    const fingerprint = statusFingerprint(status);
    if (fingerprint === this.lastStatus && this.now() - this.lastStatusAt < this.options.verifyIntervalMs) return;
    try {
      await this.options.writeStatus(status);
      this.lastStatus = fingerprint;
      this.lastStatusAt = this.now();
    } catch (err) {
      log.warn({ err: describeError(err) }, 'writing the VPC status to etcd failed');
    }
  }

  /** The status record: the plan, the subnet's entries as the tables hold them now, forwarder verdicts, warnings. */
  private status(cluster: ClusterState, planned: Planned | undefined, error: string): VpcStatus {
    const { subnet, node, health } = this.options;
    const warnings = this.warnings(cluster, planned);
    const byInstance = new Map([...cluster.nodes.values()].map((n) => [n.instanceId, n.name]));
    if (this.snapshot !== undefined) this.lastApplied = subnetEntries(this.snapshot.states, subnet);
    if (planned !== undefined) this.lastMine = planned.mine;
    const applied = [...(this.lastApplied ?? [])]
      .sort(compareEntry)
      .map((e) => ({ ...e, node: byInstance.get(e.target) ?? '' }));
    this.entriesOwned = applied.length;
    return makeStatus(
      {
        subnet,
        leader: node,
        plan: planned?.mine ?? this.lastMine ?? [],
        applied,
        forwarders: health.verdicts(),
        lastError: error,
        budgetExceeded: planned?.plan.budgetExceeded === true,
        extraHopShare: planned === undefined ? 0 : subnetExtraHopShare(planned.mine, planned.nodes, subnet),
        warnings,
      },
      this.now(),
    );
  }

  private scheduleRetry(): void {
    const t = setTimeout(() => this.markDirty(true), this.retry.next());
    t.unref?.();
  }

  /** Stops passes; resolves when the running one is over (it writes nothing more once not leader). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.verifyTimer !== undefined) clearInterval(this.verifyTimer);
    this.options.health.stop();
    await this.running?.catch(() => undefined);
  }
}
