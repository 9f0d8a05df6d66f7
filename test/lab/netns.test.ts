// Tests of the network-namespace lab: veth and bridge topologies carry
// traffic, destroy removes namespaces and kills spawned processes, stale
// namespaces of dead runs are swept (and only those), and a process killed by
// a signal or an uncaught exception leaves no namespace behind.

import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { isAlive, waitForExit } from '../../lab/pids.js';
import { Lab, NETNS_PREFIX, isTestAddress, listNamespaces, needRoot, sweepStaleNamespaces } from '../../lab/netns.js';
import { runFixture } from '../fixtures/run-fixture.js';

const skip = needRoot();

t.test('needRoot gives a reason or false', async (t) => {
  if (process.getuid?.() === 0) t.equal(skip, false, 'root here: namespaces usable');
  else t.match(skip, /needs root and network namespaces/);
});

t.test('isTestAddress', async (t) => {
  t.ok(isTestAddress('198.18.0.1'));
  t.ok(isTestAddress('198.19.255.254'));
  t.ok(isTestAddress('100.64.0.1'));
  t.ok(isTestAddress('100.127.255.255'));
  t.notOk(isTestAddress('198.20.0.1'));
  t.notOk(isTestAddress('100.128.0.1'));
  t.notOk(isTestAddress('8.8.8.8'));
  t.notOk(isTestAddress('not-an-address'));
});

t.test('two namespaces joined by a veth', { skip }, async (t) => {
  const lab = new Lab(t);
  const a = await lab.ns('a');
  const b = await lab.ns('b');
  t.match(a.name, new RegExp(`^${NETNS_PREFIX}${process.pid}-\\d+-a$`), 'name carries prefix and PID');
  await lab.veth(a, 'eth0', b, 'eth0');
  await lab.addr(a, 'eth0', '198.18.1.1/24');
  await lab.addr(b, 'eth0', '198.18.1.2/24');
  t.ok(await lab.ping(a, '198.18.1.2'), 'a reaches b');
  t.ok(await lab.ping(b, '198.18.1.1'), 'b reaches a');
  t.notOk(await lab.ping(a, '198.18.1.3'), 'nobody at .3');
  t.ok(await lab.ping(a, '198.18.1.1'), 'own address over loopback');
  await t.rejects(lab.ping(a, '192.0.2.1'), /not in 198\.18/, 'refuses addresses outside the test ranges');
  await t.rejects(lab.exec(a, 'ip', ['link', 'set', 'nosuch', 'up']), /nosuch|Cannot find/, 'exec rejects with stderr');
  t.match(await lab.exec(a, 'ip', ['-o', 'link', 'show', 'lo']), /LOOPBACK,UP/, 'loopback up');
});

t.test('three namespaces on a bridge in a fourth, and forwarding', { skip }, async (t) => {
  const lab = new Lab(t);
  const sw = await lab.ns('switch');
  await lab.bridge(sw, 'br0');
  const hosts = await Promise.all(['h1', 'h2', 'h3'].map((l) => lab.ns(l)));
  for (const [i, h] of hosts.entries()) await lab.plug(h, 'eth0', sw, 'br0', `198.18.2.${i + 1}/24`);
  for (const [i, h] of hosts.entries()) {
    for (let j = 1; j <= 3; j++) {
      if (j !== i + 1) t.ok(await lab.ping(h, `198.18.2.${j}`), `${h.label} reaches 198.18.2.${j}`);
    }
  }

  // h1 routes the pod prefix 100.64.5.0/24 of a namespace behind h2.
  const pod = await lab.ns('pod');
  await lab.veth(hosts[1]!, 'pod0', pod, 'eth0');
  await lab.addr(pod, 'eth0', '100.64.5.2/24');
  await lab.addr(hosts[1]!, 'pod0', '100.64.5.1/24');
  await lab.exec(pod, 'ip', ['route', 'add', 'default', 'via', '100.64.5.1']);
  await lab.exec(hosts[0]!, 'ip', ['route', 'add', '100.64.5.0/24', 'via', '198.18.2.2']);
  await lab.forwarding(hosts[1]!, false);
  t.notOk(await lab.ping(hosts[0]!, '100.64.5.2'), 'no forwarding: pod unreachable');
  await lab.forwarding(hosts[1]!, true);
  t.equal((await lab.exec(hosts[1]!, 'sysctl', ['-n', 'net.ipv4.ip_forward'])).trim(), '1');
  t.ok(await lab.ping(hosts[0]!, '100.64.5.2'), 'forwarding on: pod reachable');
});

t.test('destroy removes namespaces and kills spawned processes', { skip }, async (t) => {
  const lab = new Lab();
  const a = await lab.ns();
  const b = await lab.ns('x');
  t.ok(listNamespaces().includes(a.name) && listNamespaces().includes(b.name), 'listed');
  const child = lab.spawn(a, 'sleep', ['300'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  const pid = child.pid!;
  t.ok(isAlive(pid), 'spawned process alive');
  // `ip netns exec` enters the namespace and then execs: poll until it has.
  const pidsIn = (): string[] => execFileSync('ip', ['netns', 'pids', a.name], { encoding: 'utf8' }).split('\n');
  for (let i = 0; i < 100 && !pidsIn().includes(String(pid)); i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(pidsIn().includes(String(pid)), 'spawned process runs inside the namespace');
  await lab.destroy();
  t.notOk(isAlive(pid), 'spawned process killed');
  const left = listNamespaces();
  t.notOk(left.includes(a.name) || left.includes(b.name), 'namespaces deleted');
  await t.rejects(lab.ns(), /after destroy/);
  await lab.destroy();
});

t.test('teardown of the test destroys the lab', { skip }, async (t) => {
  let name = '';
  let pid = 0;
  await t.test('owner', async (st) => {
    const lab = new Lab(st);
    const ns = await lab.ns('td');
    name = ns.name;
    const child = lab.spawn(ns, 'sleep', ['300'], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('spawn', resolve));
    pid = child.pid!;
  });
  t.notOk(listNamespaces().includes(name), 'namespace gone after the subtest');
  t.notOk(isAlive(pid), 'process gone after the subtest');
});

t.test('sweep deletes stale namespaces of dead PIDs only', { skip }, async (t) => {
  const dead = spawn('true');
  await waitForExit(dead);
  const alive = spawn('sleep', ['300'], { stdio: 'ignore' });
  t.teardown(() => void alive.kill('SIGKILL'));
  await new Promise((resolve) => alive.once('spawn', resolve));
  const stale = `${NETNS_PREFIX}${dead.pid}-0-stale`;
  const live = `${NETNS_PREFIX}${alive.pid}-0-live`;
  const foreign = `x${NETNS_PREFIX}${dead.pid}-0-other`;
  for (const n of [stale, live, foreign]) execFileSync('ip', ['netns', 'add', n]);
  t.teardown(() => {
    for (const n of [stale, live, foreign]) {
      try {
        execFileSync('ip', ['netns', 'del', n], { stdio: 'pipe' });
      } catch {
        // deleted by the test
      }
    }
  });
  const swept = sweepStaleNamespaces();
  t.ok(swept.includes(stale), 'stale namespace swept');
  const left = listNamespaces();
  t.notOk(left.includes(stale), 'stale namespace gone');
  t.ok(left.includes(live), 'namespace of a live PID kept');
  t.ok(left.includes(foreign), 'namespace without our prefix kept');
});

for (const how of ['SIGTERM', 'SIGINT', 'SIGHUP', 'throw'] as const) {
  t.test(`a process ended by ${how} leaves no namespace behind`, { skip }, async (t) => {
    const run = await runFixture('lab-child.ts', [how === 'throw' ? 'throw' : 'wait']);
    const info = JSON.parse(run.firstLine) as { ns: string; sleeper: number };
    t.ok(listNamespaces().includes(info.ns), 'namespace existed');
    t.ok(isAlive(info.sleeper), 'process in it existed');
    if (how !== 'throw') run.child.kill(how);
    const end = await run.ended();
    t.notOk(end.timedOut, 'ended by itself');
    if (how === 'throw') t.equal(end.code, 1, 'exit code 1 after an uncaught exception');
    else t.equal(end.signal, how, `died of ${how}`);
    t.notOk(listNamespaces().includes(info.ns), 'namespace deleted');
    t.notOk(isAlive(info.sleeper), 'process inside killed');
  });
}

t.test('a SIGKILLed process: its processes die, the next lab sweeps its namespace', { skip }, async (t) => {
  const run = await runFixture('lab-child.ts', ['wait']);
  const info = JSON.parse(run.firstLine) as { ns: string; sleeper: number };
  run.child.kill('SIGKILL');
  await run.ended();
  // The kernel delivers the parent-death signal asynchronously.
  for (let i = 0; i < 100 && isAlive(info.sleeper); i++) await new Promise((r) => setTimeout(r, 20));
  t.notOk(isAlive(info.sleeper), 'process inside died with its parent');
  // Its namespace is stale now (another test process may sweep it first).
  sweepStaleNamespaces();
  t.notOk(listNamespaces().includes(info.ns), 'stale namespace swept');
});
