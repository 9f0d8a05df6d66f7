// Route-change notifications for the reconciler: every IPv4/IPv6 route added,
// replaced or deleted in this network namespace, by anyone, parsed like
// RouteProgrammer.list.
//
// The netlink socket lives in a child process (route-watch-child.ts), because
// an overrun of a subscribed socket aborts the process that holds it. If the
// child dies, events may have been lost: a new child is started (backing off
// when it keeps dying) and, once it listens, `resync` is reported so the
// caller re-lists and diffs. Watch events only mark work dirty; the periodic
// resync stays the source of truth (IPv4 routes flushed with their device are
// not notified at all).
//
// Invariants: events are delivered in kernel order; nothing is delivered
// after close(); the child is stopped by its PID at close().

import { fork, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rt } from 'netlink';
import { Backoff, type BackoffPolicy } from '../core/backoff.js';
import type { KernelRoute } from '../core/route.js';
import { ErrorCode, TrellisError } from '../errors.js';
import { decodeRoute } from './route-codec.js';

export type RouteEvent =
  | { kind: 'add'; route: KernelRoute; /** NLM_F_REPLACE: it took the place of another route. */ replaced: boolean }
  | { kind: 'delete'; route: KernelRoute }
  | { kind: 'resync'; reason: string };

export interface RouteWatchOptions {
  recvBufferSize: number;
  /** Resolves a device index to its name. */
  nameOf: (index: number) => Promise<string | undefined>;
  onClose?: () => void;
  /** How long to wait for a child to listen (default 30 s). */
  startTimeoutMs?: number;
}

/** V8 heap flags of the listener child (see spawnChild). */
const CHILD_HEAP_FLAGS = ['--max-semi-space-size=1'];

interface ChildMessage {
  ready?: boolean;
  msgs?: Array<{ type: number; flags: number; data: string }>;
}

const RTM_NEWROUTE = 24;
const NLM_F_REPLACE = 0x100;
/** Restarting a dead listener: 100 ms doubling to 5 s, reset after it ran healthy for HEALTHY_MS. */
const RESTART_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 5_000 };
const HEALTHY_MS = 10_000;

function childPath(): string {
  const here = fileURLToPath(import.meta.url);
  return here.slice(0, -extname(here).length).replace(/route-watch$/, 'route-watch-child') + extname(here);
}

export class RouteWatch {
  private child: ChildProcess | undefined;
  private closed = false;
  private delivery: Promise<void> = Promise.resolve();
  private readonly backoff = new Backoff(RESTART_BACKOFF);
  private restartTimer: NodeJS.Timeout | undefined;
  private restarts = 0;

  constructor(
    private readonly onChange: (event: RouteEvent) => void,
    private readonly opts: RouteWatchOptions,
  ) {}

  /** Times the listener was restarted after dying. */
  get restartCount(): number {
    return this.restarts;
  }

  /** PID of the listener process, while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the listener; resolves once it is subscribed. */
  async start(): Promise<void> {
    await this.spawnChild();
  }

  private spawnChild(): Promise<void> {
    // The child only forwards messages and keeps nothing: a young generation of
    // 3 MiB instead of up to 48 bounds its RSS under a flood of route events.
    const execArgv = [...process.execArgv.filter((a) => !a.startsWith('--inspect') && !a.startsWith('--max-semi-space-size')), ...CHILD_HEAP_FLAGS];
    const child = fork(childPath(), [], {
      execArgv,
      env: { ...process.env, TRELLIS_WATCH_RCVBUF: String(this.opts.recvBufferSize) },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.child = child;
    const startedAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        if (!ready) fail(`route watch: listener not ready in ${this.opts.startTimeoutMs ?? 30_000} ms`);
      }, this.opts.startTimeoutMs ?? 30_000);
      const fail = (why: string): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new TrellisError(ErrorCode.Unavailable, why));
      };
      child.on('message', (m: ChildMessage) => {
        if (m.ready === true && !ready) {
          ready = true;
          clearTimeout(timer);
          resolve();
        } else if (m.msgs !== undefined && !this.closed) {
          for (const raw of m.msgs) this.enqueue(raw);
        }
      });
      child.once('error', (err) => {
        if (!ready) fail(`route watch: cannot start the listener: ${err.message}`);
      });
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        if (!ready) {
          fail(`route watch: listener exited before subscribing (code ${code}, signal ${signal})`);
          return;
        }
        if (this.closed) return;
        if (Date.now() - startedAt > HEALTHY_MS) this.backoff.reset();
        this.scheduleRestart(`route listener died (code ${code}, signal ${signal}); events may be lost`);
      });
    });
  }

  private scheduleRestart(reason: string): void {
    const wait = this.backoff.next();
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.closed) return;
      this.restarts++;
      this.spawnChild().then(
        () => this.deliver({ kind: 'resync', reason }),
        (err: unknown) => this.scheduleRestart(`${reason}; restart failed: ${(err as Error).message}`),
      );
    }, wait);
  }

  private enqueue(raw: { type: number; flags: number; data: string }): void {
    let parsed;
    try {
      parsed = rt.parseRouteMessage(Buffer.from(raw.data, 'base64'));
    } catch {
      return; // not a route message we can read
    }
    this.delivery = this.delivery.then(async () => {
      const oif = parsed.attrs.oif;
      const name = oif === undefined ? undefined : await this.opts.nameOf(oif);
      const route = decodeRoute(parsed, () => name);
      if (route === undefined) return;
      if (raw.type === RTM_NEWROUTE) this.emit({ kind: 'add', route, replaced: (raw.flags & NLM_F_REPLACE) !== 0 });
      else this.emit({ kind: 'delete', route });
    });
  }

  /** Queues `event` behind the events already being resolved. */
  private deliver(event: RouteEvent): void {
    this.delivery = this.delivery.then(() => this.emit(event));
  }

  private emit(event: RouteEvent): void {
    if (this.closed) return;
    try {
      this.onChange(event);
    } catch (err) {
      // A throwing listener surfaces like one of an EventEmitter, without
      // stopping later events.
      setImmediate(() => {
        throw err;
      });
    }
  }

  /** Stops the listener. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    const child = this.child;
    this.child = undefined;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      if (child.connected) child.disconnect();
      child.kill('SIGTERM');
    }
    this.opts.onClose?.();
  }
}
