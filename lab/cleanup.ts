// Process-wide cleanup registry for test resources (servers, namespaces, temp
// directories). A registered cleanup runs at most once: at process exit, on
// SIGINT/SIGTERM/SIGHUP/SIGALRM (tap's timeout signal), or on an uncaught
// exception that is about to end the process — unless its owner unregistered
// it first, which is what a graceful `destroy()` does.
//
// Invariants: cleanups run synchronously, newest first, and one that throws
// does not stop the others. After running them on a signal the handler
// removes itself and raises the signal again, so the process still dies the
// conventional way (exit status 128 + signal number) and other listeners
// (tap's signal-exit) still see it.
//
// Tap integration: helpers take an optional `t` (anything with `teardown`)
// and register their graceful destroy there, so resources go away when the
// test ends, whether it passed or failed.
//
// A SIGKILLed process runs nothing: its temp directories carry its PID
// (`ownedTempDir`) and are swept by the next process that makes one.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A cleanup; it should do its work synchronously (a returned promise is not awaited). */
export type Cleanup = () => unknown;

/** The part of a tap `Test` the helpers use. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGALRM'] as const;
type HandledSignal = (typeof SIGNALS)[number];

const cleanups = new Map<number, Cleanup>();
let nextId = 0;
let installed = false;

/** Registers `fn` to run when the process ends; returns a function that unregisters it. */
export function registerCleanup(fn: Cleanup): () => void {
  install();
  const id = nextId++;
  cleanups.set(id, fn);
  return () => {
    cleanups.delete(id);
  };
}

/** Registers `fn` with `t.teardown` when a test object is given. */
export function onTeardown(t: Teardown | undefined, fn: () => unknown): void {
  t?.teardown(fn);
}

/** Number of cleanups currently registered (for tests of the registry itself). */
export function pendingCleanups(): number {
  return cleanups.size;
}

/** Runs every registered cleanup now, newest first, and empties the registry. */
export function runCleanups(): void {
  // A cleanup may register another one; keep going until the registry is empty.
  for (let round = 0; round < 10 && cleanups.size > 0; round++) {
    const batch = [...cleanups.entries()].reverse();
    cleanups.clear();
    for (const [, fn] of batch) {
      try {
        const result = fn();
        if (result instanceof Promise) result.catch(reportFailure);
      } catch (err) {
        reportFailure(err);
      }
    }
  }
}

function reportFailure(err: unknown): void {
  const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
  try {
    process.stderr.write(`test cleanup failed: ${text}\n`);
  } catch {
    // stderr may already be closed at exit
  }
}

function onSignal(signal: HandledSignal): void {
  runCleanups();
  uninstallSignals();
  process.kill(process.pid, signal);
}

const signalHandlers = new Map<HandledSignal, () => void>(
  SIGNALS.map((s) => [s, () => onSignal(s)]),
);

function onUncaught(): void {
  // Only when nobody handles the exception (tap's domains and handlers do and
  // keep the process alive; its teardowns then clean up).
  if (process.listenerCount('uncaughtException') === 0) runCleanups();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runCleanups);
  process.on('uncaughtExceptionMonitor', onUncaught);
  for (const [signal, handler] of signalHandlers) process.on(signal, handler);
}

function uninstallSignals(): void {
  installed = false;
  process.removeListener('exit', runCleanups);
  process.removeListener('uncaughtExceptionMonitor', onUncaught);
  for (const [signal, handler] of signalHandlers) process.removeListener(signal, handler);
}

const sweptKinds = new Set<string>();
const KIND = /^[a-z0-9]+$/;

/**
 * Creates a temp directory `trellis-<kind>-<pid>-XXXXXX`. The first call for a
 * kind removes directories of that kind left by dead processes (a SIGKILLed
 * test process cannot clean up). The caller removes its own directory.
 */
export function ownedTempDir(kind: string): string {
  if (!KIND.test(kind)) throw new Error(`ownedTempDir: bad kind ${JSON.stringify(kind)}`);
  if (!sweptKinds.has(kind)) {
    sweptKinds.add(kind);
    sweepTempDirs(kind);
  }
  return mkdtempSync(join(tmpdir(), `trellis-${kind}-${process.pid}-`));
}

/** Removes the `ownedTempDir` directories of dead processes (of `kind`, or of every kind); returns their names. */
export function sweepTempDirs(kind?: string): string[] {
  if (kind !== undefined && !KIND.test(kind)) throw new Error(`sweepTempDirs: bad kind ${JSON.stringify(kind)}`);
  const pattern = new RegExp(`^trellis-${kind ?? '[a-z0-9]+'}-(\\d+)-`);
  const gone: string[] = [];
  for (const entry of readdirSync(tmpdir())) {
    const pid = Number(pattern.exec(entry)?.[1] ?? 0);
    if (pid > 0 && pid !== process.pid && !pidExists(pid)) {
      rmSync(join(tmpdir(), entry), { recursive: true, force: true });
      gone.push(entry);
    }
  }
  return gone;
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
