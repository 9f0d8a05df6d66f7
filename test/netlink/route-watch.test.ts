// RouteProgrammer.watch against the real kernel: route changes made by
// someone else (`ip route`) are reported promptly and parsed like list(); a
// dead or overrun listener is replaced and reported as `resync`, and the
// programmer's own process survives a notification flood.

import t from 'tap';
import { rm, writeFile } from 'node:fs/promises';
import type { Teardown } from '../../lab/cleanup.js';
import { Lab, needRoot, type Netns } from '../../lab/netns.js';
import { formatPrefix } from '../../src/core/cidr.js';
import type { RouteEvent } from '../../src/netlink/route-programmer.js';
import { ProgrammerClient, render } from './fixtures/programmer-client.js';

const skip = needRoot();

async function watched(t: Teardown, recvBufferSize?: number): Promise<{ lab: Lab; ns: Netns; prog: ProgrammerClient; pid: number }> {
  const lab = new Lab(t);
  const ns = await lab.ns('watch');
  await lab.veth(ns, 'd0', ns, 'd0p');
  await lab.addr(ns, 'd0', '198.18.0.1/24');
  await lab.exec(ns, 'ip', ['-6', 'addr', 'add', 'fd00:18::1/64', 'dev', 'd0', 'nodad']);
  const prog = await ProgrammerClient.start(lab, ns, recvBufferSize === undefined ? {} : { recvBufferSize });
  t.teardown(() => prog.stop());
  const pid = await prog.call<number>('watch');
  return { lab, ns, prog, pid };
}

const isRoute = (kind: 'add' | 'delete', dst: string) => (e: RouteEvent): boolean =>
  e.kind === kind && formatPrefix(e.route.dst) === dst;

t.test('changes made by others are reported within a second', { skip }, async (t) => {
  const { lab, ns, prog } = await watched(t);
  await lab.exec(ns, 'ip', ['route', 'add', '100.64.7.0/24', 'via', '198.18.0.2', 'proto', '84', 'metric', '3']);
  const added = await prog.waitForEvent(isRoute('add', '100.64.7.0/24'), 1_000);
  t.equal(added.kind === 'add' && render(added.route), 'unicast 100.64.7.0/24 via 198.18.0.2 dev d0 table 254 proto 84 metric 3');

  const from = prog.events.length;
  const start = Date.now();
  await lab.exec(ns, 'ip', ['route', 'del', '100.64.7.0/24', 'via', '198.18.0.2', 'metric', '3']);
  const deleted = await prog.waitForEvent(isRoute('delete', '100.64.7.0/24'), 1_000, from);
  t.ok(Date.now() - start < 1_000, 'delete seen within a second of ip route del');
  t.equal(deleted.kind === 'delete' && deleted.route.protocol, 84, 'the deleted route was ours');

  await lab.exec(ns, 'ip', ['route', 'add', '100.64.8.0/24', 'via', '198.18.0.2', 'proto', 'static']);
  await lab.exec(ns, 'ip', ['route', 'replace', '100.64.8.0/24', 'via', '198.18.0.3', 'proto', '84']);
  const replaced = await prog.waitForEvent((e) => isRoute('add', '100.64.8.0/24')(e) && e.kind === 'add' && e.replaced, 1_000);
  t.match(replaced, { kind: 'add', replaced: true, route: { protocol: 84 } }, 'a replacement is flagged');

  await lab.exec(ns, 'ip', ['-6', 'route', 'add', 'blackhole', 'fd00:64::/64', 'table', '1000', 'proto', 'static']);
  const v6 = await prog.waitForEvent(isRoute('add', 'fd00:64::/64'), 1_000);
  t.equal(v6.kind === 'add' && render(v6.route), 'blackhole fd00:64::/64 via - dev lo table 1000 proto 4 metric 1024', 'IPv6, other table');
});

t.test('a killed listener is replaced and reported as resync', { skip }, async (t) => {
  const { lab, ns, prog, pid } = await watched(t);
  process.kill(pid, 'SIGKILL');
  const resync = await prog.waitForEvent((e) => e.kind === 'resync', 10_000);
  t.match(resync, { kind: 'resync', reason: /died/ });
  const info = await prog.call<{ pid: number; restarts: number }>('watchInfo');
  t.not(info.pid, pid, 'a new listener runs');
  t.equal(info.restarts, 1);
  await lab.exec(ns, 'ip', ['route', 'add', '100.64.9.0/24', 'via', '198.18.0.2']);
  await prog.waitForEvent(isRoute('add', '100.64.9.0/24'), 1_000);
  t.pass('events flow again after the restart');
});

t.test('an overrun listener dies alone; the programmer survives', { skip }, async (t) => {
  // A small receive buffer and a stopped listener guarantee the overrun.
  const { lab, ns, prog, pid } = await watched(t, 128 << 10);
  process.kill(pid, 'SIGSTOP');
  const batch = Array.from({ length: 3000 }, (_, i) => `route add 100.64.${i >> 8}.${i & 255}/32 via 198.18.0.2 proto 84`);
  const file = `/tmp/trlnl-${process.pid}-batch`;
  await writeFile(file, `${batch.join('\n')}\n`);
  t.teardown(() => rm(file, { force: true }));
  await lab.exec(ns, 'ip', ['-batch', file]);
  process.kill(pid, 'SIGCONT');
  const resync = await prog.waitForEvent((e) => e.kind === 'resync', 15_000);
  t.match(resync, { kind: 'resync' }, 'caller told to resync');
  const stats = await prog.call<{ requests: number }>('stats');
  t.type(stats.requests, 'number', 'programmer process still answers');
  const listed = await prog.list({ table: 254, protocol: 84 });
  t.equal(listed.length, 3000, 'and lists the routes it must re-read');
});
