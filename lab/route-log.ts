// A log of kernel route changes in one lab namespace: `ip -4 monitor route`
// running there, every added or deleted route of one protocol kept with the
// time it arrived. Tests and the chaos runner read it to tell whether a peer
// ever removed (or added) a route while a fault was on, which a poll of the
// table could miss between two reads.
//
// Invariants: the monitor is spawned through the lab (killed by PID when the
// lab is destroyed or by stop()); `ready()` resolves once the monitor runs,
// so no change made after it is missed.

import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import type { Lab, NsRef } from './netns.js';
import { delay } from './pids.js';

export interface RouteEvent {
  /** Destination with its length, e.g. `100.96.0.64/26`. */
  readonly dst: string;
  readonly deleted: boolean;
  /** Date.now() when the line arrived. */
  readonly at: number;
  readonly line: string;
}

export class RouteLog {
  readonly events: RouteEvent[] = [];
  private readonly child: ChildProcess;

  constructor(
    lab: Lab,
    readonly ns: NsRef,
    /** Only routes of this rtm_protocol are kept. */
    readonly protocol = 84,
  ) {
    this.child = lab.spawn(ns, 'ip', ['-4', 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.onLine(line));
  }

  private onLine(line: string): void {
    if (!new RegExp(`\\bproto (${this.protocol}|${protocolName(this.protocol)})\\b`).test(line)) return;
    const words = line.trim().split(/\s+/);
    let k = 0;
    const deleted = words[k] === 'Deleted';
    if (deleted) k++;
    if (/^(unicast|blackhole|unreachable|prohibit|throw)$/.test(words[k] ?? '')) k++;
    const dst = words[k];
    if (dst === undefined || !/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(dst)) return;
    this.events.push({ dst: dst.includes('/') ? dst : `${dst}/32`, deleted, at: Date.now(), line });
  }

  /** Resolves once the monitor process runs (a short settle after spawn). */
  async ready(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      if (this.child.pid !== undefined) resolve();
      this.child.once('spawn', () => resolve());
      this.child.once('error', reject);
    });
    await delay(200);
  }

  /** Deletions since `from` (ms epoch), optionally of one destination. */
  deletions(from = 0, dst?: string): RouteEvent[] {
    return this.events.filter((e) => e.deleted && e.at >= from && (dst === undefined || e.dst === dst));
  }

  /** Additions since `from` (ms epoch), optionally of one destination. */
  additions(from = 0, dst?: string): RouteEvent[] {
    return this.events.filter((e) => !e.deleted && e.at >= from && (dst === undefined || e.dst === dst));
  }

  stop(): void {
    if (this.child.pid !== undefined && this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}

/** iproute2 prints some protocol numbers by name (rt_protos). */
function protocolName(n: number): string {
  return ({ 2: 'kernel', 3: 'boot', 4: 'static' } as Record<number, string>)[n] ?? String(n);
}
