// Every chaos fault, in the order `npm run chaos` runs them. Add a fault:
// one file in this directory exporting a ChaosFault, one line here.
// The etcd member faults need a cluster built with --etcd-members 3 (the
// default of `npm run chaos`); with one member they are skipped with a note.
// The EC2 faults need the cluster in VPC mode (the default of `npm run chaos`).

import { diskFull } from './disk-full.js';
import { etcdLeaderKill, etcdMemberRestart } from './etcd-members.js';
import { ec2PartitionAdvertiser } from './ec2-partition-advertiser.js';
import { ec2ThrottleStorm } from './ec2-throttle-storm.js';
import { etcdPause } from './etcd-pause.js';
import type { ChaosFault } from './fault.js';
import { hostileForged, hostileMalformed } from './hostile-records.js';
import { partitionNode } from './partition-node.js';
import { trellisdKillLoop } from './trellisd-kill-loop.js';

export const FAULTS: readonly ChaosFault[] = [etcdPause, etcdLeaderKill, etcdMemberRestart, trellisdKillLoop, partitionNode, diskFull, hostileMalformed, hostileForged, ec2ThrottleStorm, ec2PartitionAdvertiser];

export function faultsNamed(names: readonly string[] | undefined): ChaosFault[] {
  if (names === undefined || names.length === 0) return [...FAULTS];
  return names.map((n) => {
    const f = FAULTS.find((x) => x.name === n);
    if (f === undefined) throw new Error(`no chaos fault "${n}"; there are: ${FAULTS.map((x) => x.name).join(', ')}`);
    return f;
  });
}
