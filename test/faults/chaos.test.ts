// The chaos runner in its reduced form for CI: a 3-host cluster with a 3 s
// hold time, the whole-etcd pause, malformed records and forged ones (a claim
// and advertisement of a free block with no node record): each promised, so
// each must lose nothing. Then the two EC2 faults on a cluster in VPC mode
// (moto through the lab's EC2 proxy): a throttling storm while a node joins,
// and the subnet's advertiser cut off from EC2 (another node must take
// over). etcd authentication is on throughout, each trellisd as its own
// node user (lab/cluster-auth.ts). The etcd member faults run in
// test/lab/etcd-members.test.ts; the full run is `npm run chaos`.

import t from 'tap';
import { needRoot } from '../../lab/netns.js';
import { needMoto } from '../../lab/moto.js';
import { faultsNamed } from '../../lab/chaos/registry.js';
import { chaosTable, runChaos } from '../../lab/chaos/runner.js';

const skip = needRoot();

t.test('chaos, reduced: promised faults lose nothing', { skip }, async (t) => {
  const rows = await runChaos(t, { faults: faultsNamed(['etcd-pause', 'hostile-malformed', 'hostile-forged']), hosts: 3, holdTime: '3s', auth: true });
  t.equal(rows.length, 3, 'every fault ran');
  t.comment(`\n${chaosTable(rows)}`);
  for (const r of rows.filter((x) => x.promised)) {
    t.equal(r.verdict, 'ok', `${r.fault}: nothing promised was lost`);
    t.equal(r.lost, 0, `${r.fault}: ${r.lost} of ${r.sent} packets lost`);
    t.ok(r.sent > 0, `${r.fault}: pings ran`);
    t.same([...r.routesRemoved, ...r.routesInstalled, ...r.addressesLost, ...r.addressesDuplicated, ...r.cniFailures], [], `${r.fault}: no route, address or CNI call lost`);
  }
  const forged = rows.find((r) => r.fault === 'hostile-forged');
  t.ok(forged?.promised, 'forged records are a promised fault');
  t.match(forged?.notes.join('\n') ?? '', /CNI churn: [1-9]\d* ADD/, 'the churn ran');
});

t.test('chaos, reduced, VPC mode: EC2 throttling storm and the advertiser cut off from EC2', { skip: skip || needMoto() }, async (t) => {
  const rows = await runChaos(t, { faults: faultsNamed(['ec2-throttle-storm', 'ec2-partition-advertiser']), hosts: 3, holdTime: '3s', vpc: true, auth: true });
  t.equal(rows.length, 2, 'every fault ran');
  t.comment(`\n${chaosTable(rows)}`);
  for (const r of rows) {
    t.ok(r.promised, `${r.fault} is promised`);
    t.equal(r.verdict, 'ok', `${r.fault}: nothing promised was lost`);
    t.ok(r.sent > 0, `${r.fault}: pings ran`);
    t.same(r.vpcEntriesLost, [], `${r.fault}: no VPC entry wrongly removed`);
    t.same([...r.routesRemoved, ...r.addressesLost, ...r.addressesDuplicated, ...r.cniFailures], [], `${r.fault}: no route, address or CNI call lost`);
    t.notMatch(r.notes.join('\n'), /VIOLATED|skipped/, `${r.fault}: ran, and its own checks held`);
  }
  t.match(rows[0]?.notes.join('\n') ?? '', /joined during the storm[\s\S]*[1-9]\d* EC2 calls refused/, 'a node joined while EC2 refused calls');
  t.match(rows[1]?.notes.join('\n') ?? '', /took over after[\s\S]*a candidate again/, 'another node took over, and the cut-off one came back as a candidate');
});
