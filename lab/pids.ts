// Process helpers for the test harness: liveness by PID, synchronous kill for
// exit-time cleanup, and graceful stop (SIGTERM, then SIGKILL after a timeout)
// of a child we spawned. Everything acts on one PID at a time, never on names.

import { execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';

/** True while `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPERM') return true;
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ..." — comm may contain spaces and parentheses.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` milliseconds (exit-time cleanup only). */
/** Every descendant of `pid` (from /proc), at this moment, parents before their children. */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  for (let i = -1; i < out.length; i++) {
    const of = i < 0 ? pid : (out[i] as number);
    for (const [c, p] of parent) if (p === of) out.push(c);
  }
  return out;
}

export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** Sends `signal` to `pid` and blocks until it is gone or `waitMs` passed; true if gone. */
export function killSync(pid: number, signal: NodeJS.Signals = 'SIGKILL', waitMs = 2000): boolean {
  try {
    process.kill(pid, signal);
  } catch {
    return !isAlive(pid);
  }
  const deadline = Date.now() + waitMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    sleepSync(10);
  }
  return true;
}

/** Resolves when `child` has exited (immediately if it already has). */
export function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM, wait up to `timeoutMs`, then SIGKILL and wait for the exit. */
export async function stopChild(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = waitForExit(child);
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), timeoutMs);
  });
  const late = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (late) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** SIGKILL and wait for the exit. */
export async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = waitForExit(child);
  child.kill('SIGKILL');
  await exited;
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `cond` every `stepMs` until it holds; resolves with the ms it took, rejects after `timeoutMs` naming `what`. */
export async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 20_000, stepMs = 100): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(stepMs);
  }
  return Date.now() - start;
}

/** The first existing executable named `name` on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir === '') continue;
    const candidate = `${dir}/${name}`;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const setpriv = which('setpriv');

/**
 * Command and arguments to spawn `cmd` so that the kernel SIGKILLs it if this
 * process dies without running its cleanups (e.g. SIGKILL). Uses util-linux
 * `setpriv --pdeathsig`, which execs: the PID stays the child's PID.
 */
export function dieWithParent(cmd: string, args: readonly string[]): [string, string[]] {
  if (setpriv === undefined) return [cmd, [...args]];
  return [setpriv, ['--pdeathsig', 'KILL', '--', cmd, ...args]];
}

/**
 * Command and arguments to run `cmd` without NODE_OPTIONS. Under tap, its
 * process-info hook puts itself back into NODE_OPTIONS of every child a test
 * spawns, whatever environment is passed, so each trellisd would load tap's
 * module hooks and write V8 coverage: a start about half again as slow as in
 * production. `env` execs: the PID stays the child's PID.
 */
export function withoutNodeOptions(cmd: string, args: readonly string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', cmd, ...args]];
}

/** Error of a failed command (etcdctl, openssl, ip…), with its streams and exit code. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
    readonly code: number | string | null,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Runs `cmd` with exactly `env`; resolves with its stdout, rejects with a CommandError naming the command. */
export function runCommand(cmd: string, args: readonly string[], options: { env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: options.env, timeout: options.timeoutMs ?? 30_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err === null) {
        resolve(stdout);
        return;
      }
      const code = (err as { code?: number | string | null }).code ?? null;
      reject(new CommandError(`${cmd} ${args.join(' ')} failed (${code}): ${stderr.trim() || err.message}`, stdout, stderr, code));
    });
  });
}
