// CNI churn during a fault: the trellis plugin, as the IPAM plugin of a
// chained configuration (ipam mode: it allocates and releases, touches no
// kernel), run ADD then DEL in a loop on every host in turn, as a runtime
// would: retrying a call that answers 11 (try again later: etcd does not
// answer) or 100 (trellisd not reachable: it is restarting), every 500 ms
// for up to 30 s, counting each kind.
//
// It counts what the docs promise never happens: a call that still fails
// after that, or with any other code, an address handed to two live containers at once, and
// an address an ADD returned that trellisd no longer holds for its container
// (lost). Invariants: one call in flight at a time; stop() waits for it and
// releases what it still holds.

import type { ClusterLab, LabHost } from '../cluster-lab.js';
import { invoke, type Outcome } from '../cni-harness.js';
import { callIpamSocket } from '../ipam-socket.js';
import { join } from 'node:path';
import { delay } from '../pids.js';

export interface ChurnCounts {
  adds: number;
  dels: number;
  /** Calls answered 11 (retried). */
  retried: number;
  /** Calls answered 100, trellisd not reachable (retried). */
  unreachable: number;
  /** Calls failed with another code (after retries for 11). */
  failed: string[];
  duplicated: string[];
  lost: string[];
}

export class CniChurn {
  readonly counts: ChurnCounts = { adds: 0, dels: 0, retried: 0, unreachable: 0, failed: [], duplicated: [], lost: [] };
  /** address → container id, for live ADDs. */
  private readonly live = new Map<string, { id: string; host: LabHost }>();
  private running = true;
  private readonly loop: Promise<void>;
  private seq = 0;

  constructor(
    private readonly cluster: ClusterLab,
    private readonly path: string,
  ) {
    this.loop = this.run();
  }

  private socket(h: LabHost): string {
    return join(h.daemon.stateDir, 'trellisd.sock');
  }

  private async call(command: 'ADD' | 'DEL', h: LabHost, id: string): Promise<Outcome> {
    const config = { cniVersion: '1.1.0', name: 'chaos', type: 'ptp', ipam: { type: 'trellis', socket: this.socket(h) } };
    for (let i = 0; ; i++) {
      const out = await invoke({ command, hostNs: h.ns.name, containerId: id, netns: '/var/run/netns/none', path: this.path, config, type: 'trellis' });
      const code = (out.json as { code?: number } | undefined)?.code;
      if (out.code === 0 || (code !== 11 && code !== 100) || i >= 60 || !this.running) return out;
      if (code === 11) this.counts.retried++;
      else this.counts.unreachable++;
      await delay(500);
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      for (const h of this.cluster.hosts) {
        if (!this.running) break;
        if (!h.daemon.running) continue;
        const id = `churn-${this.seq++}`;
        const add = await this.call('ADD', h, id);
        this.counts.adds++;
        if (add.code !== 0) {
          this.counts.failed.push(`ADD ${id} on ${h.name}: ${add.stdout.trim().slice(0, 200)}`);
          continue;
        }
        const address = String(((add.json as { ips?: Array<{ address: string }> }).ips ?? [])[0]?.address ?? '').split('/')[0]!;
        const other = this.live.get(address);
        if (other !== undefined) this.counts.duplicated.push(`${address}: ${other.id} and ${id}`);
        this.live.set(address, { id, host: h });
        await delay(100);
        await this.checkHeld(h, address, id);
        const del = await this.call('DEL', h, id);
        this.counts.dels++;
        if (del.code !== 0) this.counts.failed.push(`DEL ${id} on ${h.name}: ${del.stdout.trim().slice(0, 200)}`);
        else this.live.delete(address);
      }
    }
  }

  /** The address is still held by its container in trellisd's allocations (skipped while trellisd does not answer). */
  private async checkHeld(h: LabHost, address: string, id: string): Promise<void> {
    try {
      const r = await callIpamSocket(this.socket(h), 'GET', '/v1/allocations');
      if (r.status !== 200) return;
      const list = (r.body as { allocations?: Array<{ address: string; containerId: string }> }).allocations ?? [];
      if (!list.some((a) => a.address === address && a.containerId === id)) this.counts.lost.push(`${address} of ${id} on ${h.name}`);
    } catch {
      // trellisd restarting: nothing to check now
    }
  }

  async stop(): Promise<ChurnCounts> {
    this.running = false;
    await this.loop;
    return this.counts;
  }
}
