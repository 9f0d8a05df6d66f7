// Tests of the moto_server helper: it answers EC2 calls through the AWS SDK,
// reset wipes state, stop ends the PID and frees the port.

import t from 'tap';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { CreateVpcCommand, DescribeVpcsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { needMoto, startMoto } from './moto.js';
import { isAlive } from './pids.js';

t.test('needMoto', async (t) => {
  const reason = needMoto();
  if (reason !== false) t.match(reason, /needs moto_server/);
  else t.pass('moto_server found on PATH');
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
