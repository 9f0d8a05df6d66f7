// A continuous ping (every 100 ms) from a pod to an address, until stop(),
// which answers how many echo requests went out and how many came back.
//
// Invariants: the ping is spawned through the lab (killed by PID when the lab
// is destroyed); stop() sends SIGINT, on which ping prints its summary.

import type { ChildProcess } from 'node:child_process';
import type { Lab, NsRef } from '../netns.js';

export class PingStream {
  private readonly child: ChildProcess;
  private out = '';
  private readonly exited: Promise<void>;

  constructor(
    lab: Lab,
    ns: NsRef,
    readonly to: string,
    readonly label: string,
  ) {
    this.child = lab.spawn(ns, 'ping', ['-n', '-q', '-i', '0.1', '-W', '1', to], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  async stop(): Promise<{ sent: number; received: number }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    await this.exited;
    const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(this.out);
    if (m === null) throw new Error(`ping ${this.label}: no summary:\n${this.out}`);
    return { sent: Number(m[1]), received: Number(m[2]) };
  }
}
