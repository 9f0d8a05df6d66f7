// A multi-member etcd cluster on loopback (or in one namespace) for lab tests, the demo and chaos
// faults. Each member is an EtcdServer (etcd.ts) with its own data directory
// and reserved client and peer ports; the members are started together (none
// is healthy before a quorum is up) and each is killed by its PID.
//
// Invariants: every member's PID is known while it runs (`pids()`), a paused
// member is resumed before it is stopped, and every member is stopped and its
// directory removed when the test ends (or, without `t`, when the process
// ends: see cleanup.ts).

import { onTeardown, type Teardown } from './cleanup.js';
import { EtcdServer } from './etcd.js';
import { freePorts } from './ports.js';
import { isAlive, until } from './pids.js';

export interface EtcdClusterOptions {
  /** Number of members; default 3. */
  members?: number;
  /** How long start-up may take; default 60 s. */
  startTimeoutMs?: number;
  /** Run the members inside this network namespace (full name). */
  netns?: string;
  /** Listen address of every member; default 127.0.0.1 (with `netns`, an address of that namespace). */
  host?: string;
  /** Extra etcd flags for every member. */
  extraArgs?: string[];
}

interface MemberStatus {
  Endpoint?: string;
  Status?: { header?: { member_id?: number | string }; leader?: number | string };
}

export class EtcdCluster {
  private readonly paused = new Set<number>();

  constructor(readonly members: readonly EtcdServer[]) {}

  /** Client URLs of every member, in member order. */
  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }

  /** `--etcd-endpoints` value: every member, comma separated. */
  get endpointList(): string {
    return this.endpoints.join(',');
  }

  /** PID of each running member (0 for a stopped one). */
  pids(): number[] {
    return this.members.map((m) => (m.running ? m.pid : 0));
  }

  /** Index of the member that is leader now, asked of the running, unpaused members; undefined when none knows one. */
  async leader(): Promise<number | undefined> {
    // Only members that can answer: etcdctl fails the whole status call on one dead endpoint.
    const up = this.members.filter((m, i) => m.running && !this.paused.has(i));
    const asked = up.map((m) => m.endpoint).join(',');
    for (const m of up) {
      try {
        const out = await m.etcdctl([`--endpoints=${asked}`, 'endpoint', 'status', '-w', 'json'], { timeoutMs: 3_000, dialTimeoutMs: 1_000 });
        const status = JSON.parse(out) as MemberStatus[];
        const leaderId = status.find((s) => s.Status?.leader !== undefined && String(s.Status.leader) !== '0')?.Status?.leader;
        if (leaderId === undefined) continue;
        const at = status.find((s) => String(s.Status?.header?.member_id) === String(leaderId))?.Endpoint;
        const index = this.members.findIndex((x) => x.endpoint === at);
        if (index >= 0) return index;
      } catch {
        // this member does not answer (or the cluster has no quorum): ask the next
      }
    }
    return undefined;
  }

  /** Waits until a leader is elected and resolves with its index. */
  async waitLeader(timeoutMs = 30_000): Promise<number> {
    let found: number | undefined;
    await until('an etcd leader', async () => (found = await this.leader()) !== undefined, timeoutMs, 200);
    return found as number;
  }

  /** SIGKILLs member `i` (by its PID) and waits for its exit. */
  async kill(i: number): Promise<void> {
    this.resume(i);
    await this.member(i).kill();
  }

  /** Starts member `i` again on its ports and data; resolves once it answers. */
  async restart(i: number): Promise<void> {
    await this.member(i).start();
  }

  /** SIGSTOPs member `i`: it holds its ports but answers nothing. */
  pause(i: number): void {
    const m = this.member(i);
    if (!m.running || this.paused.has(i)) return;
    process.kill(m.pid, 'SIGSTOP');
    this.paused.add(i);
  }

  /** SIGCONTs member `i` if it was paused. */
  resume(i: number): void {
    if (!this.paused.delete(i)) return;
    const m = this.member(i);
    if (m.running && isAlive(m.pid)) process.kill(m.pid, 'SIGCONT');
  }

  /** Resumes, stops and removes every member. Idempotent. */
  async destroy(): Promise<void> {
    for (const i of [...this.paused]) this.resume(i);
    await Promise.all(this.members.map((m) => m.destroy()));
  }

  private member(i: number): EtcdServer {
    const m = this.members[i];
    if (m === undefined) throw new Error(`etcd cluster: no member ${i} (it has ${this.members.length})`);
    return m;
  }
}

/** Starts an etcd cluster of `members` members on loopback; with `t`, destroys it when the test ends. */
export async function startEtcdCluster(t?: Teardown, opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const n = opts.members ?? 3;
  const ports = await freePorts(2 * n);
  const name = (i: number): string => `trellis-m${i}`;
  const host = opts.host ?? '127.0.0.1';
  const peer = (i: number): string => `http://${host}:${ports[2 * i + 1]}`;
  const initial = Array.from({ length: n }, (_, i) => `${name(i)}=${peer(i)}`).join(',');
  const members = Array.from(
    { length: n },
    (_, i) =>
      new EtcdServer(ports[2 * i] as number, ports[2 * i + 1] as number, {
        startTimeoutMs: opts.startTimeoutMs ?? 60_000,
        host,
        ...(opts.netns === undefined ? {} : { netns: opts.netns }),
        // Later flags win over etcd.ts's single-member ones. Timeouts suit a busy
        // shared host: a 200 ms election timeout would elect on every stall.
        extraArgs: [`--name=${name(i)}`, `--initial-cluster=${initial}`, '--initial-cluster-token=trellis-lab', '--heartbeat-interval=100', '--election-timeout=1000', ...(opts.extraArgs ?? [])],
      }),
  );
  const cluster = new EtcdCluster(members);
  onTeardown(t, () => cluster.destroy());
  try {
    await Promise.all(members.map((m) => m.start()));
    await cluster.waitLeader(opts.startTimeoutMs ?? 60_000);
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}
