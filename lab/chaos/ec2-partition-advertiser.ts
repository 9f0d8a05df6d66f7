// Fault: the subnet's VPC advertiser cut off from EC2. nftables in its
// namespace (a table of the lab's own, deleted after) drops its packets to
// the EC2 endpoint; etcd and its peers still reach it, so it keeps its lease
// and, left alone, its leadership. The docs promise (docs/vpc.md, "EC2
// unreachable"): once its EC2 calls have gone unanswered for
// vpc.unreachableAfter (15 s; an idle advertiser makes its first call within
// one verification interval, 5 s here) it stands down and another node of the
// subnet takes over; no entry is removed meanwhile; it is no candidate while
// EC2 does not answer it, and a candidate again once EC2 answers (its probe
// runs every 5 s). A fault that sees otherwise reports a violation.
// Runs only in VPC mode (needsVpc).

import { cutOff } from '../etcd-partition.js';
import { delay, until } from '../pids.js';
import { vpcOf, type ChaosFault } from './fault.js';
import { advertiserCandidates, electedAdvertiser } from './vpc-watch.js';

/** Bound on the takeover: verification interval + unreachableAfter + a connect timeout, with margin. */
const TAKEOVER_MS = 60_000;

export const ec2PartitionAdvertiser: ChaosFault = {
  name: 'ec2-partition-advertiser',
  summary: "the subnet's VPC advertiser cut off from EC2 (nftables) until another node took over",
  promised: true,
  needsVpc: true,
  async run(world) {
    const v = vpcOf(world);
    const { cluster } = world;
    const violations: string[] = [];
    const leader = await electedAdvertiser(cluster, v.subnet);
    if (leader === undefined) return { violations: ['no advertiser elected before the fault'] };
    const host = cluster.host(leader);
    const heal = await cutOff(cluster, host, [{ address: '198.18.1.1', port: v.ec2Port }], 'trellis_chaos_ec2');
    const cut = Date.now();
    try {
      let successor: string | undefined;
      try {
        await until(
          'another advertiser',
          async () => {
            successor = await electedAdvertiser(cluster, v.subnet);
            return successor !== undefined && successor !== leader;
          },
          TAKEOVER_MS,
          250,
        );
        world.note(`${leader} cut off from EC2; ${successor} took over after ${((Date.now() - cut) / 1000).toFixed(1)} s`);
      } catch {
        violations.push(`${leader} cut off from EC2: no other node took over within ${TAKEOVER_MS / 1000} s`);
        return { violations };
      }
      try {
        await until('the successor writing the status', async () => (await v.lab.statusOf(v.subnet))?.leader === successor, 30_000, 250);
        world.note(`${successor}'s first pass (EC2 read, status written) done ${((Date.now() - cut) / 1000).toFixed(1)} s after the cut`);
      } catch {
        violations.push(`${successor} leads but wrote no status within 30 s`);
      }
      await delay(6000); // more than one probe period: it must stay out while EC2 does not answer
      if ((await advertiserCandidates(cluster, v.subnet)).includes(leader)) violations.push(`${leader} is a candidate again while EC2 still does not answer it`);
    } finally {
      await heal();
    }
    const healed = Date.now();
    try {
      await until(`${leader} a candidate again`, async () => (await advertiserCandidates(cluster, v.subnet)).includes(leader), 30_000, 250);
      world.note(`${leader} a candidate again ${((Date.now() - healed) / 1000).toFixed(1)} s after EC2 answered it again`);
    } catch {
      violations.push(`${leader} not a candidate again within 30 s of EC2 answering`);
    }
    return { violations };
  },
};
