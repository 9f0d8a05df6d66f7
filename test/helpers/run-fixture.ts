// Runs a TypeScript fixture from test/fixtures/ in a child node process with
// this process's loaders (tap's TypeScript import), waits for its first
// output line, and lets the test signal it and collect how it ended.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { registerCleanup } from './cleanup.js';
import { killSync } from './pids.js';

export interface FixtureEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the fixture had to be SIGKILLed because it did not end in time. */
  timedOut: boolean;
}

export interface FixtureRun {
  child: ChildProcess;
  /** The first line the fixture printed. */
  firstLine: string;
  /** Resolves with how the fixture ended; SIGKILLs it after `timeoutMs` (default 15 s). */
  ended(timeoutMs?: number): Promise<FixtureEnd>;
}

/** Starts `test/fixtures/<name>` with `args`; resolves once it printed a line. */
export async function runFixture(name: string, args: readonly string[], timeoutMs = 30_000): Promise<FixtureRun> {
  const path = fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, path, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const unregister = registerCleanup(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) killSync(child.pid);
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let timedOut = false;
  const closed = new Promise<FixtureEnd>((resolve) =>
    child.once('close', (code, signal) => {
      unregister();
      resolve({ code, signal, stdout, stderr, timedOut });
    }),
  );
  const ended = (limitMs = 15_000): Promise<FixtureEnd> => {
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, limitMs);
    return closed.finally(() => clearTimeout(timer));
  };
  const firstLine = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fixture ${name}: no output in ${timeoutMs} ms\n${stderr}`)), timeoutMs);
    const onData = (): void => {
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      resolve(stdout.slice(0, nl));
    };
    child.stdout?.on('data', onData);
    void closed.then(() => {
      clearTimeout(timer);
      reject(new Error(`fixture ${name} ended before printing a line:\n${stdout}${stderr}`));
    });
  });
  return { child, firstLine, ended };
}
