// Fault: the whole etcd paused (SIGSTOP) for twice the hold time, then
// resumed. Every lease expires at once; the docs promise no route removed and
// no packet lost (mass-withdrawal damping), and CNI calls answered 11 while
// etcd does not answer.

import { delay } from '../pids.js';
import type { ChaosFault } from './fault.js';

export const etcdPause: ChaosFault = {
  name: 'etcd-pause',
  summary: 'whole etcd SIGSTOPped for 2× the hold time, then SIGCONT',
  promised: true,
  async run(world) {
    // Every member at once: the whole etcd stops answering.
    const members = world.cluster.etcdCluster?.members ?? [world.cluster.etcd];
    for (const m of members) m.pause();
    try {
      await delay(2 * world.holdMs);
    } finally {
      for (const m of members) m.resume();
    }
    return {};
  },
};
