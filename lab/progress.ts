// Waits that scale with the work, for the lab, the demo and benchmarks.
//
// * `startBounded` starts many daemons a few at a time: each start is a node
//   process loading its modules (a CPU-bound second or so on a small
//   machine), so starting sixty at once makes every one of them wait for all
//   the others and no fixed per-daemon timeout fits. With a bounded number in
//   flight each start takes about what one takes alone, its own timeout
//   counts from its own spawn, and the whole grows linearly with the count.
//   The error names every host
//   that did not become ready and why; after a failure no new start begins.
// * `waitProgress` polls a check that returns what is still outstanding (a
//   list of human-readable items) and keeps waiting while that list shrinks
//   or changes; it fails only when nothing progressed for `stallMs` (or the
//   optional overall cap passed), and the error names what is still missing.
//
// Invariants: no fixed wall-clock budget for a whole cluster; every timeout
// error says exactly what was being waited for.

import { cpus } from 'node:os';
import { delay } from './pids.js';

/** Default number of daemons starting at once: two per core, at least two. */
export function defaultStartParallelism(): number {
  return Math.max(2, cpus().length * 2);
}

export interface BoundedItem {
  /** Name used in errors (a host name). */
  readonly name: string;
  /** Starts one daemon; resolves when it is ready, rejects with the reason otherwise. */
  readonly start: () => Promise<void>;
}

/** Runs the starts with at most `parallel` in flight; rejects, after all have settled, naming every failure. */
export async function startBounded(items: readonly BoundedItem[], parallel = defaultStartParallelism(), what = 'trellisd ready'): Promise<void> {
  const failures: Array<{ name: string; reason: string }> = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    // After a failure no new start begins (those in flight finish): a broken
    // cluster fails in one per-host budget, not in one per remaining host.
    while (next < items.length && failures.length === 0) {
      const item = items[next++]!;
      try {
        await item.start();
      } catch (err) {
        failures.push({ name: item.name, reason: (err as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, worker));
  if (failures.length > 0) {
    const names = failures.map((f) => f.name).join(', ');
    const first = failures[0]!;
    const skipped = items.slice(next).map((i) => i.name);
    const notStarted = skipped.length > 0 ? `; not started after that: ${skipped.join(', ')}` : '';
    throw new Error(`not ${what} on ${failures.length} of ${items.length} host(s): ${names}${notStarted}\nfirst failure (${first.name}): ${first.reason}`);
  }
}

export interface ProgressOptions {
  /** Fail when the outstanding list has not changed for this long (ms). */
  stallMs: number;
  /** Poll interval (ms); default 250. */
  pollMs?: number;
  /** Optional overall cap (ms). */
  maxMs?: number;
  /** How many outstanding items an error lists (default 20). */
  show?: number;
}

/**
 * Polls `outstanding` until it returns an empty list; resolves with the ms it
 * took. Any change of the list counts as progress. Rejects naming `what` and
 * the items still outstanding when nothing progressed for `stallMs`.
 */
export async function waitProgress(what: string, outstanding: () => Promise<readonly string[]> | readonly string[], o: ProgressOptions): Promise<number> {
  const started = Date.now();
  let lastChange = started;
  let last = '';
  for (;;) {
    const items = await outstanding();
    if (items.length === 0) return Date.now() - started;
    const key = items.join('\n');
    const now = Date.now();
    if (key !== last) {
      last = key;
      lastChange = now;
    }
    const stalled = now - lastChange > o.stallMs;
    const capped = o.maxMs !== undefined && now - started > o.maxMs;
    if (stalled || capped) {
      const show = o.show ?? 20;
      const list = items.slice(0, show).map((i) => `  ${i}`).join('\n');
      const more = items.length > show ? `\n  … and ${items.length - show} more` : '';
      const why = stalled ? `no progress for ${Math.round(o.stallMs / 1000)} s` : `gave up after ${Math.round((o.maxMs ?? 0) / 1000)} s`;
      throw new Error(`timed out waiting for ${what} (${why}, ${Math.round((now - started) / 1000)} s in all); still missing ${items.length}:\n${list}${more}`);
    }
    await delay(o.pollMs ?? 250);
  }
}
