// Tests of the moto_server helper: it answers EC2 calls through the AWS SDK,
// reset wipes state, stop ends the PID and frees the port; in a namespace it
// listens on a lab address and is reached from here through a forward.

import t from 'tap';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { CreateVpcCommand, DescribeVpcsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { needMoto, startMoto } from '../../lab/moto.js';
import { isAlive } from '../../lab/pids.js';
import { Lab, needRoot } from '../../lab/netns.js';

t.test('needMoto', async (t) => {
  const reason = needMoto();
  if (reason !== false) t.match(reason, /needs moto_server/);
  else t.pass('moto_server found');
});

t.test('start, DescribeVpcs, reset, stop', { skip: needMoto() }, async (t) => {
  const moto = await startMoto(t);
  t.match(moto.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.ok(isAlive(moto.pid), 'PID alive');
  const ec2 = new EC2Client(moto.clientConfig());
  t.teardown(() => ec2.destroy());

  const defaults = (await ec2.send(new DescribeVpcsCommand({}))).Vpcs ?? [];
  t.ok(defaults.some((v) => v.IsDefault === true), 'moto has a default VPC');

  const created = await ec2.send(new CreateVpcCommand({ CidrBlock: '198.18.0.0/16' }));
  const id = created.Vpc?.VpcId;
  t.match(id, /^vpc-/);
  const after = (await ec2.send(new DescribeVpcsCommand({}))).Vpcs ?? [];
  t.ok(after.some((v) => v.VpcId === id), 'created VPC listed');

  await moto.reset();
  const reset = (await ec2.send(new DescribeVpcsCommand({}))).Vpcs ?? [];
  t.notOk(reset.some((v) => v.VpcId === id), 'reset wiped the created VPC');

  const pid = moto.pid;
  const dir = dirname(moto.logFile);
  await moto.stop();
  t.notOk(isAlive(pid), 'PID gone after stop');
  t.notOk(existsSync(dir), 'temp dir removed');
  await t.rejects(fetch(`${moto.endpoint}/moto-api/`), 'no longer answers');
  await moto.stop();
});

t.test('in a namespace on a lab address, reached from here through a forward', { skip: needMoto() || needRoot() }, async (t) => {
  const lab = new Lab(t);
  const ns = await lab.ns('moto');
  await lab.addr(ns, 'lo', '198.18.0.1/32');
  const moto = await startMoto(t, { netns: ns.name, host: '198.18.0.1' });
  t.match(moto.endpoint, /^http:\/\/198\.18\.0\.1:\d+$/, 'listens on the lab address');
  t.match(moto.localEndpoint, /^http:\/\/127\.0\.0\.1:\d+$/, 'reached through loopback here');
  const ec2 = new EC2Client(moto.clientConfig());
  t.teardown(() => ec2.destroy());
  const created = await ec2.send(new CreateVpcCommand({ CidrBlock: '198.18.0.0/16' }));
  t.match(created.Vpc?.VpcId, /^vpc-/, 'EC2 calls work');
  const inside = await lab.exec(ns, 'curl', ['-s', `${moto.endpoint}/latest/meta-data/instance-id`]);
  t.equal(inside, 'i-fake', 'answers inside the namespace, instance metadata too');
  const pid = moto.pid;
  await moto.stop();
  t.notOk(isAlive(pid), 'PID gone after stop');
  await t.rejects(fetch(`${moto.localEndpoint}/moto-api/`), 'the forward is closed');
});
