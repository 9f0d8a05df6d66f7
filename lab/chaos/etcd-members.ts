// Faults of one etcd member (lab/etcd-faults.ts) in a 3-member etcd: the
// leader SIGKILLed, and a follower killed and restarted. The docs promise no
// route removed, no packet lost, and CNI failures only retryable (11). Both
// need the chaos cluster built with --etcd-members 3 (or 5); with one member
// they are skipped with a note, since losing the only member is a whole-etcd
// outage (etcd-pause covers that).

import type { EtcdCluster } from '../etcd-cluster.js';
import { leaderKill, memberKillRestart } from '../etcd-faults.js';
import type { ChaosFault, ChaosWorld } from './fault.js';

function membersOf(world: ChaosWorld): EtcdCluster | undefined {
  const c = world.cluster.etcdCluster;
  if (c === undefined) world.note('skipped: etcd has one member (run with --etcd-members 3)');
  return c;
}

export const etcdLeaderKill: ChaosFault = {
  name: 'etcd-leader-kill',
  summary: 'the etcd leader SIGKILLed, restarted once a new leader is elected',
  promised: true,
  async run(world) {
    const c = membersOf(world);
    if (c === undefined) return {};
    const o = await leaderKill(c);
    world.note(`leader ${o.leaderBefore} killed; member ${o.leaderDuring} elected in ${o.electionMs} ms; member back after ${o.recoverMs} ms`);
    return {};
  },
};

export const etcdMemberRestart: ChaosFault = {
  name: 'etcd-member-restart',
  summary: 'one etcd follower SIGKILLed for 2× the hold time, then restarted',
  promised: true,
  async run(world) {
    const c = membersOf(world);
    if (c === undefined) return {};
    const leader = await c.waitLeader();
    const follower = (leader + 1) % c.members.length;
    const o = await memberKillRestart(c, follower, 2 * world.holdMs);
    world.note(`member ${o.member} down ${2 * world.holdMs} ms; back after ${o.recoverMs} ms; leader ${o.leaderAfter}`);
    return {};
  },
};
