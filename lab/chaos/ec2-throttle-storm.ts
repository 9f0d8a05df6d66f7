// Fault: an EC2 throttling storm. For 20 s the lab's EC2 proxy answers every
// call with RequestLimitExceeded (EC2's XML error shape), while a node joins
// (the spare host starts: every table needs its entries) and CNI churn goes
// on. The docs promise (docs/vpc.md, "AWS quotas" and "EC2 unreachable"): no
// entry removed, no packet lost, the subnet's advertiser keeps its leadership
// (a refusal is an answer: it never stands down for throttling) and keeps
// retrying, and the tables converge once the storm ends (the runner's time to
// recover: until they match the plan, the new node's entries made).
// Runs only in VPC mode (needsVpc).

import { delay } from '../pids.js';
import { vpcOf, type ChaosFault } from './fault.js';
import { electedAdvertiser } from './vpc-watch.js';

const STORM_MS = 20_000;

export const ec2ThrottleStorm: ChaosFault = {
  name: 'ec2-throttle-storm',
  summary: 'every EC2 call answered RequestLimitExceeded for 20 s while a node joins',
  promised: true,
  needsVpc: true,
  async run(world) {
    const v = vpcOf(world);
    const violations: string[] = [];
    const leaderBefore = await electedAdvertiser(world.cluster, v.subnet);
    const proxy = v.lab.proxy;
    proxy.resetCounts();
    const start = Date.now();
    proxy.throttle(1);
    let leaderDuring: string | undefined;
    try {
      const joined = await world.joinSpare();
      world.note(joined === undefined ? 'no spare host left: no node joined' : `${joined.name} joined during the storm`);
      await delay(Math.max(0, STORM_MS - (Date.now() - start)));
      leaderDuring = await electedAdvertiser(world.cluster, v.subnet);
    } finally {
      proxy.throttle(0);
    }
    const refused = Object.values(proxy.throttledCounts()).reduce((a, b) => a + b, 0);
    world.note(`${refused} EC2 calls refused in ${Date.now() - start} ms (${JSON.stringify(proxy.throttledCounts())})`);
    if (refused === 0) violations.push('the storm refused no EC2 call: nothing was tested');
    if (leaderDuring !== leaderBefore) violations.push(`the subnet's advertiser changed during the storm (${leaderBefore} → ${leaderDuring}): throttling must not make it stand down`);
    return { violations };
  },
};
