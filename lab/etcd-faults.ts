// etcd member faults for lab tests and the chaos run: each takes a running
// EtcdCluster, injects one fault, waits for the cluster to recover (a leader
// again, the faulted member back and answering) and reports what happened.
// Invariants: a fault leaves the cluster with every member running; waits are
// bounded and fail naming what did not come back; timings are reported, never
// asserted here.

import type { EtcdCluster } from './etcd-cluster.js';
import { until } from './pids.js';

export interface FaultOutcome {
  /** Fault name as the chaos table shows it. */
  readonly fault: string;
  /** Index of the member faulted. */
  readonly member: number;
  /** Leader index before the fault and after recovery. */
  readonly leaderBefore: number;
  /** Leader while the faulted member was down (or paused). */
  readonly leaderDuring: number;
  readonly leaderAfter: number;
  /** From the fault until a leader was elected among the others (0 when the leader was kept). */
  readonly electionMs: number;
  /** From the fault until the faulted member answered again. */
  readonly recoverMs: number;
}

async function memberBack(cluster: EtcdCluster, i: number): Promise<void> {
  const m = cluster.members[i];
  if (m === undefined) throw new Error(`etcd fault: no member ${i}`);
  await until(`etcd member ${i} to answer again`, async () => (await m.healthy()).ok, 60_000, 200);
}

/** SIGKILL the leader, wait for a new one among the rest, then restart the old leader. */
export async function leaderKill(cluster: EtcdCluster, downMs = 0): Promise<FaultOutcome> {
  const leaderBefore = await cluster.waitLeader();
  const start = Date.now();
  await cluster.kill(leaderBefore);
  const leaderNow = await cluster.waitLeader(60_000);
  const electionMs = Date.now() - start;
  if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
  await cluster.restart(leaderBefore);
  await memberBack(cluster, leaderBefore);
  const recoverMs = Date.now() - start;
  const leaderAfter = (await cluster.leader()) ?? leaderNow;
  return { fault: 'etcd leader kill', member: leaderBefore, leaderBefore, leaderDuring: leaderNow, leaderAfter, electionMs, recoverMs };
}

/** SIGKILL member `i` (default: a follower), keep it down `downMs`, restart it. */
export async function memberKillRestart(cluster: EtcdCluster, i?: number, downMs = 0): Promise<FaultOutcome> {
  const leaderBefore = await cluster.waitLeader();
  const member = i ?? (leaderBefore + 1) % cluster.members.length;
  const start = Date.now();
  await cluster.kill(member);
  const leaderNow = await cluster.waitLeader(60_000);
  const electionMs = member === leaderBefore ? Date.now() - start : 0;
  if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
  await cluster.restart(member);
  await memberBack(cluster, member);
  const recoverMs = Date.now() - start;
  const leaderAfter = (await cluster.leader()) ?? leaderNow;
  return { fault: 'etcd member kill and restart', member, leaderBefore, leaderDuring: leaderNow, leaderAfter, electionMs, recoverMs };
}

/** SIGSTOP member `i` for `pausedMs`, then SIGCONT it and wait until it answers. */
export async function memberPause(cluster: EtcdCluster, i: number, pausedMs: number): Promise<FaultOutcome> {
  const leaderBefore = await cluster.waitLeader();
  const start = Date.now();
  cluster.pause(i);
  const leaderDuring = await cluster.waitLeader(60_000);
  await new Promise((r) => setTimeout(r, Math.max(0, pausedMs - (Date.now() - start))));
  cluster.resume(i);
  await memberBack(cluster, i);
  const leaderAfter = await cluster.waitLeader(60_000);
  return { fault: 'etcd member pause', member: i, leaderBefore, leaderDuring, leaderAfter, electionMs: 0, recoverMs: Date.now() - start };
}
