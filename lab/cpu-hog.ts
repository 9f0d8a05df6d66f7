// A busy host for lab tests and the chaos runner: `count` processes spinning
// on the CPU (default one per core) until stop(), so that trellisd starts,
// stops and keepalives are measured as on a loaded machine.
//
// Invariants: the hogs are this process's children, killed by PID on stop()
// and at exit (lab/cleanup.ts); they never touch the network or the disk.

import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { onTeardown, registerCleanup, type Teardown } from './cleanup.js';
import { dieWithParent, killSync } from './pids.js';

export class CpuHog {
  private readonly children: ChildProcess[] = [];
  private readonly unregister: () => void;

  constructor(count = cpus().length) {
    for (let i = 0; i < count; i++) {
      const [cmd, args] = dieWithParent('sh', ['-c', 'while :; do :; done']);
      this.children.push(spawn(cmd, args, { stdio: 'ignore' }));
    }
    this.unregister = registerCleanup(() => this.stop());
  }

  stop(): void {
    for (const c of this.children) if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) killSync(c.pid, 'SIGKILL');
    this.unregister();
  }
}

/** CPU hogs that stop when the test ends. */
export function cpuHog(t: Teardown, count?: number): CpuHog {
  const hog = new CpuHog(count);
  onTeardown(t, () => hog.stop());
  return hog;
}
