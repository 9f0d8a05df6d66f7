// Route monitors for benchmarks: `ip -4 monitor route` running in a network
// namespace, each line timestamped (performance.now()) when it reaches this
// process. A monitor keeps, for a tracked set of destinations, which are in the
// kernel and when each last appeared, so a benchmark can wait for routes
// without polling the kernel. Also an etcd writer client (see etcd-writer.ts)
// whose acknowledgements are timestamped the same way.

import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

const ROUTE_TYPES = new Set(['unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat']);

/** Parses one line of `ip monitor route`: its destination (with /len) and whether it was a deletion. */
export function parseMonitorLine(line: string): { dst: string; deleted: boolean } | undefined {
  const words = line.trim().split(/\s+/);
  let k = 0;
  if (words[k] === '[ROUTE]') k++;
  const deleted = words[k] === 'Deleted';
  if (deleted) k++;
  if (ROUTE_TYPES.has(words[k] ?? '')) k++;
  const dst = words[k];
  if (dst === undefined || !/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(dst)) return undefined;
  return { dst: dst.includes('/') ? dst : `${dst}/32`, deleted };
}

export class RouteMonitor extends EventEmitter {
  /** Tracked destinations present in the kernel → arrival time (ms) of their last add. */
  readonly present = new Map<string, number>();
  private tracked = new Set<string>();
  /** Tracked destinations deleted since tracking began → arrival time (ms) of the delete. */
  readonly removed = new Map<string, number>();
  /** Arrival time of the last add of a tracked destination. */
  lastAdd = 0;
  lines = 0;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    super();
    if (child.stdout === null) throw new Error(`route monitor ${name}: no stdout pipe`);
    createInterface({ input: child.stdout }).on('line', (line) => this.onLine(line, performance.now()));
  }

  /** Tracks `destinations` from now on (forgetting earlier ones); returns how many are present. */
  track(destinations: Iterable<string>): void {
    this.tracked = new Set(destinations);
    this.present.clear();
    this.removed.clear();
  }

  /** Adds a destination to the tracked set. */
  trackAlso(dst: string): void {
    this.tracked.add(dst);
  }

  private onLine(line: string, at: number): void {
    this.lines++;
    const r = parseMonitorLine(line);
    if (r === undefined) return;
    this.emit('line', r.dst, r.deleted, at);
    if (!this.tracked.has(r.dst)) return;
    if (r.deleted) {
      this.present.delete(r.dst);
      this.removed.set(r.dst, at);
    } else {
      this.present.set(r.dst, at);
      this.lastAdd = at;
    }
    this.emit('change');
  }
}

/** Resolves once `done()` holds, re-checked whenever one of `monitors` changes; rejects after `timeoutMs`. */
export function waitFor(monitors: readonly EventEmitter[], done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  if (done()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!done()) return;
      finish();
      resolve();
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`${what}: not within ${(timeoutMs / 1000).toFixed(1)} s`));
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      for (const m of monitors) m.off('change', check);
    };
    for (const m of monitors) m.on('change', check);
  });
}

interface Reply {
  id: number;
  ok: boolean;
  error?: string;
}

/** Client of an etcd-writer child: each request resolves with the arrival time (ms) of its acknowledgement. */
export class EtcdWriter {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (at: number) => void; reject: (err: Error) => void }>();
  private exited: Error | undefined;

  constructor(readonly child: ChildProcess) {
    if (child.stdout === null || child.stdin === null) throw new Error('etcd writer: stdin and stdout must be pipes');
    createInterface({ input: child.stdout }).on('line', (line) => {
      const at = performance.now();
      const reply = JSON.parse(line) as Reply;
      const p = this.pending.get(reply.id);
      if (p === undefined) return;
      this.pending.delete(reply.id);
      if (reply.ok) p.resolve(at);
      else p.reject(new Error(`etcd writer: ${reply.error ?? 'failed'}`));
    });
    child.once('exit', (code, signal) => {
      this.exited = new Error(`etcd writer exited (code ${code}, signal ${signal})`);
      for (const p of this.pending.values()) p.reject(this.exited);
      this.pending.clear();
    });
  }

  private send(req: Record<string, unknown>): Promise<number> {
    if (this.exited !== undefined) return Promise.reject(this.exited);
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, ...req })}\n`);
    });
  }

  put(key: string, value: string): Promise<number> {
    return this.send({ op: 'put', key, value });
  }

  batch(puts: Array<[string, string]>, deletes: string[] = []): Promise<number> {
    return this.send({ op: 'batch', puts, deletes });
  }

  deletePrefix(prefix: string): Promise<number> {
    return this.send({ op: 'deletePrefix', prefix });
  }

  close(): void {
    this.child.stdin?.end();
  }
}
