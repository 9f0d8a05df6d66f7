// Every chaos fault, in the order `npm run chaos` runs them. Add a fault:
// one file in this directory exporting a ChaosFault, one line here.
// (etcd member faults — leader kill, member kill and restart — come with the
// 3-member etcd lab.)

import { diskFull } from './disk-full.js';
import { etcdPause } from './etcd-pause.js';
import type { ChaosFault } from './fault.js';
import { hostileForged, hostileMalformed } from './hostile-records.js';
import { partitionNode } from './partition-node.js';
import { trellisdKillLoop } from './trellisd-kill-loop.js';

export const FAULTS: readonly ChaosFault[] = [etcdPause, trellisdKillLoop, partitionNode, diskFull, hostileMalformed, hostileForged];

export function faultsNamed(names: readonly string[] | undefined): ChaosFault[] {
  if (names === undefined || names.length === 0) return [...FAULTS];
  return names.map((n) => {
    const f = FAULTS.find((x) => x.name === n);
    if (f === undefined) throw new Error(`no chaos fault "${n}"; there are: ${FAULTS.map((x) => x.name).join(', ')}`);
    return f;
  });
}
