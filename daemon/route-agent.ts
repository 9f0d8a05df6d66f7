// The route agent: keeps the kernel's Trellis routes equal to the desired
// routes, by reconciling, never by flushing.
//
// Each pass: desired = compute(), observed = the kernel's table, diff, apply.
// Watch events from etcd and from netlink only mark the agent dirty; one
// coalesced pass follows. The observed table is listed from the kernel on the
// first pass, on every periodic resync (`resyncMs`), after a failure and when
// the notification stream reports a gap; in between it is kept current from
// route notifications and from the changes the agent itself made, so a pass
// after one etcd change costs a diff, not a dump of the table.
// Incremental path: applyChanges() hands the agent the desired routes that
// changed (by route key, from src/core/route-index.ts); the next pass then
// diffs and applies only those keys, so one advertisement change costs its
// routes, not the whole set. Anything else (start, periodic resync, kernel
// events, failures, markDirty) asks for a full pass, which recomputes every
// desired route with compute() and so corrects any drift.
// Invariants:
//  * No pass runs before compute() returns routes, which it does only once
//    the first full sync from etcd is complete: after a restart the routes
//    already in the kernel stay until then, and only stale ones go after.
//  * Only routes with our protocol are ever replaced or removed; pod routes
//    (see isPodRoute) are never removed; a foreign route holding a desired
//    destination is reported as a conflict, not fought.
//  * While etcd is unreachable the cluster view does not change, so no route
//    is removed; when it returns, passes converge with no manual step.

import type { Logger } from 'pino';
import { describeRoute, diffRoutes, isEmptyDiff, routeKey, sameRoute, type KernelRoute, type RouteDiff } from '../src/core/route.js';
import type { RouteProgrammer } from '../src/netlink/route-programmer.js';
import type { RouteEvent } from '../src/netlink/route-watch.js';
import type { Metrics } from './metrics.js';
import { Backoff, type BackoffPolicy } from '../src/core/backoff.js';

/** Passing again after a failed pass: 200 ms doubling to 10 s, reset by a pass that succeeds. */
export const RECONCILE_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 10_000 };

/** What the agent needs of the kernel (RouteProgrammer fits). */
export type RouteAgentProgrammer = Pick<RouteProgrammer, 'list' | 'apply'> & {
  watch(onChange: (event: RouteEvent) => void): Promise<{ close(): void }>;
};

export interface RouteAgentOptions {
  programmer: RouteAgentProgrammer;
  /** Desired routes, or undefined while the view from etcd is not complete. */
  compute: () => KernelRoute[] | undefined;
  /** Owned routes that must never be removed (pod routes). */
  keep: (r: KernelRoute) => boolean;
  table: number;
  protocol: number;
  resyncMs: number;
  log: Logger;
  metrics: Metrics;
  /** Delay before a pass after the agent is marked dirty (coalescing window). */
  coalesceMs?: number;
  now?: () => number;
}

export class RouteAgent {
  private dirty = false;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private watch: { close(): void } | undefined;
  private desired = new Map<string, KernelRoute>();
  /** The kernel's routes of our table by key; undefined until listed. */
  private observed: Map<string, KernelRoute> | undefined;
  private needList = true;
  private reportedConflicts = new Set<string>();
  private readonly backoff = new Backoff(RECONCILE_BACKOFF);
  private stopped = false;
  /** A full pass is wanted (anything but applyChanges asks for one). */
  private fullWanted = true;
  /** Desired routes changed since the last pass, by key (undefined: not wanted any more). */
  private pending = new Map<string, KernelRoute | undefined>();
  /** Number of completed incremental passes. */
  partialPasses = 0;
  /** No pass runs before the kernel route watch is up (start() resolved). */
  private started = false;
  private readonly now: () => number;
  /** Time of the last pass that completed without error (ms). */
  lastFullSync: number | undefined;
  /** Number of completed passes. */
  passes = 0;

  constructor(private readonly o: RouteAgentOptions) {
    this.now = o.now ?? Date.now;
  }

  get ready(): boolean {
    return this.lastFullSync !== undefined;
  }

  async start(): Promise<void> {
    this.watch = await this.o.programmer.watch((e) => this.onKernelEvent(e));
    this.resyncTimer = setInterval(() => {
      this.needList = true;
      this.markDirty('periodic resync');
    }, this.o.resyncMs);
    this.resyncTimer.unref?.();
    this.started = true;
    this.markDirty('start');
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.resyncTimer !== undefined) clearInterval(this.resyncTimer);
    this.watch?.close();
  }

  /** Schedule one full pass soon; many calls before it runs give one pass. */
  markDirty(reason: string, delayMs = this.o.coalesceMs ?? 5): void {
    this.fullWanted = true;
    this.schedule(reason, delayMs);
  }

  /**
   * The desired routes at these keys changed (undefined: no longer wanted).
   * The next pass, unless a full one is due anyway, touches only these keys.
   */
  applyChanges(changed: ReadonlyMap<string, KernelRoute | undefined>): void {
    if (changed.size === 0) return;
    for (const [key, r] of changed) this.pending.set(key, r === undefined ? undefined : { ...r, protocol: this.o.protocol });
    this.schedule('desired routes changed');
  }

  private schedule(reason: string, delayMs = this.o.coalesceMs ?? 5): void {
    if (this.stopped) return;
    this.dirty = true;
    if (!this.started) return; // start() runs the first pass
    if (this.timer !== undefined || this.running) return;
    this.o.log.trace({ reason }, 'reconcile scheduled');
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.pass();
    }, delayMs);
  }

  /** Does this kernel event concern a route we own or want? */
  private relevant(e: RouteEvent): boolean {
    if (e.kind === 'resync') return true;
    const key = routeKey(e.route);
    const want = this.desired.get(key);
    // Ours deleted by someone else, or a foreign route that held a desired destination gone: either way, (re)install.
    if (e.kind === 'delete') return want !== undefined;
    if (e.route.protocol !== this.o.protocol) return want !== undefined; // a foreign route took a desired destination
    return want === undefined ? !this.o.keep(e.route) : !sameRoute(e.route, want);
  }

  private onKernelEvent(e: RouteEvent): void {
    if (e.kind === 'resync') this.needList = true;
    else if (e.route.table === this.o.table && this.observed !== undefined) {
      const key = routeKey(e.route);
      if (e.kind === 'add') this.observed.set(key, e.route);
      else if (this.observed.get(key)?.protocol === e.route.protocol) this.observed.delete(key);
    }
    if (!this.relevant(e)) return;
    const what = e.kind === 'resync' ? `resync: ${e.reason}` : `${e.kind} ${describeRoute(e.route)}`;
    this.o.log.debug({ event: what }, 'kernel route changed under us');
    this.markDirty('kernel event');
  }

  /** One reconcile pass (exposed for tests and benchmarks). */
  async pass(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    this.dirty = false;
    const started = this.now();
    const end = this.o.metrics.reconcileDuration.startTimer();
    let ok = false;
    let skipped = false;
    try {
      if (!this.fullWanted && !this.needList && this.observed !== undefined && this.lastFullSync !== undefined) {
        await this.partialPass(started);
        ok = true;
        return;
      }
      const desired = this.o.compute();
      if (desired === undefined) {
        skipped = true; // not synced from etcd yet: touch nothing, and count no pass (nothing failed)
        return;
      }
      // `desired` reflects every change so far: pending ones are in it.
      this.fullWanted = false;
      this.pending.clear();
      const listed = this.needList || this.observed === undefined;
      if (listed) {
        this.needList = false;
        const table = await this.o.programmer.list({ table: this.o.table });
        this.observed = new Map(table.map((r) => [routeKey(r), r]));
      }
      const observed = this.observed as Map<string, KernelRoute>;
      const wanted = new Set(desired.map(routeKey));
      const relevant = [...observed.values()].filter((r) => r.protocol === this.o.protocol || wanted.has(routeKey(r)));
      const diff = diffRoutes(desired, relevant, { protocol: this.o.protocol, keep: this.o.keep });
      this.desired = new Map(desired.map((r) => [routeKey(r), { ...r, protocol: this.o.protocol }]));
      this.reportConflicts(diff.conflicts);
      await this.applyDiff(diff, observed, started);
      this.o.metrics.routesManaged.set(desired.length - diff.conflicts.length);
      this.o.metrics.routeConflicts.set(diff.conflicts.length);
      if (listed) this.lastFullSync = this.now();
      this.passes++;
      this.backoff.reset();
      ok = true;
    } catch (err) {
      this.needList = true;
      const retryMs = this.backoff.next();
      this.o.log.warn({ err: (err as Error).message, retryMs }, 'reconcile pass failed; retrying');
      this.running = false;
      this.markDirty('retry after failure', retryMs);
    } finally {
      end();
      if (!skipped) this.o.metrics.reconcilePasses.inc({ result: ok ? 'ok' : 'error' });
      this.running = false;
      if (this.dirty && this.timer === undefined) this.schedule('changes during the pass');
    }
  }

  /** Diff and apply only the keys whose desired route changed since the last pass. */
  private async partialPass(started: number): Promise<void> {
    const changed = this.pending;
    this.pending = new Map();
    const observed = this.observed as Map<string, KernelRoute>;
    const desired: KernelRoute[] = [];
    const here: KernelRoute[] = [];
    for (const [key, r] of changed) {
      if (r === undefined) this.desired.delete(key);
      else {
        this.desired.set(key, r);
        desired.push(r);
      }
      const seen = observed.get(key);
      if (seen !== undefined && (seen.protocol === this.o.protocol || r !== undefined)) here.push(seen);
    }
    const diff = diffRoutes(desired, here, { protocol: this.o.protocol, keep: this.o.keep });
    this.reportConflicts(diff.conflicts, new Set(changed.keys()));
    try {
      await this.applyDiff(diff, observed, started);
    } catch (err) {
      this.fullWanted = true; // the retry is a full pass
      throw err;
    }
    this.o.metrics.routesManaged.set(this.desired.size - this.reportedConflicts.size);
    this.o.metrics.routeConflicts.set(this.reportedConflicts.size);
    this.partialPasses++;
    this.passes++;
    this.backoff.reset();
  }

  private async applyDiff(diff: RouteDiff, observed: Map<string, KernelRoute>, started: number): Promise<void> {
    if (isEmptyDiff(diff)) return;
    const result = await this.o.programmer.apply(diff);
    const failed = new Set(result.errors.map((e) => e.route));
    for (const r of [...diff.add, ...diff.replace]) if (!failed.has(r)) observed.set(routeKey(r), r);
    for (const r of diff.remove) if (!failed.has(r)) observed.delete(routeKey(r));
    this.o.metrics.routeChanges.inc({ op: 'add' }, result.added);
    this.o.metrics.routeChanges.inc({ op: 'replace' }, result.replaced);
    this.o.metrics.routeChanges.inc({ op: 'remove' }, result.removed);
    this.o.log.info(
      { added: result.added, replaced: result.replaced, removed: result.removed, errors: result.errors.length, ms: this.now() - started },
      'routes reconciled',
    );
    if (result.errors.length > 0) {
      for (const e of result.errors.slice(0, 10)) this.o.log.warn({ err: e.error.message }, 'route change failed');
      throw new Error(`${result.errors.length} route change(s) failed`);
    }
  }

  /** Log new conflicts once; `only` limits the update to these route keys (incremental pass). */
  private reportConflicts(conflicts: ReadonlyArray<{ desired: KernelRoute; foreign: KernelRoute }>, only?: ReadonlySet<string>): void {
    const now = new Set<string>();
    if (only !== undefined) for (const key of this.reportedConflicts) if (!only.has(key.slice(0, key.lastIndexOf(' ')))) now.add(key);
    for (const c of conflicts) {
      const key = `${routeKey(c.desired)} ${c.foreign.protocol}`;
      now.add(key);
      if (!this.reportedConflicts.has(key)) {
        this.o.log.warn(
          { wanted: describeRoute(c.desired), foreign: describeRoute(c.foreign), foreignProtocol: c.foreign.protocol },
          'a route of another protocol holds this destination; leaving it alone',
        );
      }
    }
    this.reportedConflicts = now;
  }
}
