// CPU time and resident memory of a process, read from /proc (Linux).
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface Usage {
  /** CPU seconds (user + system) used so far. */
  cpuSeconds: number;
  /** Resident set size, MiB. */
  rssMiB: number;
}

export function usage(pid: number): Usage {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  return { cpuSeconds: (utime + stime) / TICKS_PER_SECOND, rssMiB: rssKiB / 1024 };
}

/** Samples a process over `ms` while `during` runs; CPU as a share of one core. */
export async function measure(pid: number, ms: number, during?: (signal: { stop: boolean }) => Promise<void>): Promise<{ cpuPercent: number; rssMiB: number; peakRssMiB: number }> {
  const before = usage(pid);
  const started = performance.now();
  let peak = before.rssMiB;
  const signal = { stop: false };
  const work = during?.(signal);
  while (performance.now() - started < ms) {
    await new Promise((r) => setTimeout(r, 250));
    peak = Math.max(peak, usage(pid).rssMiB);
  }
  signal.stop = true;
  await work;
  const after = usage(pid);
  const wall = (performance.now() - started) / 1000;
  return { cpuPercent: ((after.cpuSeconds - before.cpuSeconds) / wall) * 100, rssMiB: after.rssMiB, peakRssMiB: peak };
}

/**
 * Waits until `pid` uses less than `busyShare` of one core over each of two
 * consecutive `windowMs` windows (at most `maxMs`); resolves with the time
 * waited. After a bulk load etcd keeps working for a while (snapshots,
 * compaction of its bbolt file): measuring during that would charge its
 * work to whatever is measured next.
 */
export async function settle(pid: number, o: { windowMs?: number; busyShare?: number; maxMs?: number } = {}): Promise<number> {
  const windowMs = o.windowMs ?? 1000;
  const busyShare = o.busyShare ?? 0.05;
  const maxMs = o.maxMs ?? 60_000;
  const started = performance.now();
  let quiet = 0;
  let last = usage(pid).cpuSeconds;
  while (quiet < 2 && performance.now() - started < maxMs) {
    await new Promise((r) => setTimeout(r, windowMs));
    const now = usage(pid).cpuSeconds;
    quiet = (now - last) * 1000 < busyShare * windowMs ? quiet + 1 : 0;
    last = now;
  }
  return performance.now() - started;
}
