// RouteProgrammer against the real kernel, inside throwaway network
// namespaces: add/replace/remove of IPv4 and IPv6 routes via a gateway,
// blackhole and unreachable routes, non-main tables, list() agreeing with
// `ip route`, foreign routes left alone by apply(), the error taxonomy, and
// thousands of routes with bounded concurrency.

import t from 'tap';
import type { Teardown } from '../../lab/cleanup.js';
import { Lab, needRoot, type Netns } from '../../lab/netns.js';
import { parseAddress, parsePrefix } from '../../src/core/cidr.js';
import { diffRoutes, type KernelRoute } from '../../src/core/route.js';
import { RouteProgrammer, TRELLIS_RTPROT, type RouteProgrammerOptions } from '../../src/netlink/route-programmer.js';
import { ChildCallError, ProgrammerClient, ipRoutes, render } from './fixtures/programmer-client.js';

const skip = needRoot();
const P = TRELLIS_RTPROT;

interface Host {
  lab: Lab;
  ns: Netns;
  prog: ProgrammerClient;
}

/** A namespace with veth d0 (198.18.0.1/24, fd00:18::1/64) and a programmer running in it. */
async function host(t: Teardown, opts: RouteProgrammerOptions = {}): Promise<Host> {
  const lab = new Lab(t);
  const ns = await lab.ns('nl');
  await lab.veth(ns, 'd0', ns, 'd0p');
  await lab.addr(ns, 'd0', '198.18.0.1/24');
  await lab.exec(ns, 'ip', ['-6', 'addr', 'add', 'fd00:18::1/64', 'dev', 'd0', 'nodad']);
  const prog = await ProgrammerClient.start(lab, ns, opts);
  t.teardown(() => prog.stop());
  return { lab, ns, prog };
}

function route(dst: string, extra: Partial<KernelRoute> = {}): KernelRoute {
  return { dst: parsePrefix(dst), type: 'unicast', table: 254, protocol: P, ...extra };
}

const via = (gw: string, dev?: string): Partial<KernelRoute> => ({
  gateway: parseAddress(gw),
  ...(dev === undefined ? {} : { ifName: dev }),
});

/** Our routes as `ip` shows them, both families, all tables. */
async function ours(h: Host): Promise<string[]> {
  const all = [...(await ipRoutes(h.lab, h.ns, 4)), ...(await ipRoutes(h.lab, h.ns, 6))];
  return all.filter((l) => l.includes(` proto ${P} `)).sort();
}

async function rejection(p: Promise<unknown>): Promise<ChildCallError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ChildCallError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

t.test('protocol number', async (t) => {
  t.equal(P, 84);
  t.ok(P > 4 && P < 256, 'above the kernel-interpreted range, fits rtm_protocol');
});

t.test('bad options are configuration errors (checked before any socket opens)', async (t) => {
  const bad: RouteProgrammerOptions[] = [
    { protocol: 2 },
    { protocol: 256 },
    { maxInFlight: 0 },
    { maxInFlight: 65 },
    { timeoutMs: -1 },
    { recvBufferSize: 1.5 },
  ];
  for (const opts of bad) t.throws(() => new RouteProgrammer(opts), { code: 'E_CONFIG' }, JSON.stringify(opts));
});

t.test('add, replace and remove IPv4 and IPv6 routes via a gateway', { skip }, async (t) => {
  const h = await host(t);
  await h.prog.call('add', route('100.64.0.0/26', via('198.18.0.2', 'd0')));
  await h.prog.call('add', route('fd00:64::/64', via('fd00:18::2', 'd0')));
  t.same(await ours(h), [
    `unicast 100.64.0.0/26 via 198.18.0.2 dev d0 table 254 proto ${P} metric 0`,
    `unicast fd00:64::/64 via fd00:18::2 dev d0 table 254 proto ${P} metric 1024`,
  ]);

  await h.prog.call('replace', route('100.64.0.0/26', via('198.18.0.3', 'd0')));
  await h.prog.call('replace', route('fd00:64::/64', via('fd00:18::3')));
  await h.prog.call('replace', route('100.64.0.64/26', via('198.18.0.4'))); // replace creates too
  t.same(await ours(h), [
    `unicast 100.64.0.0/26 via 198.18.0.3 dev d0 table 254 proto ${P} metric 0`,
    `unicast 100.64.0.64/26 via 198.18.0.4 dev d0 table 254 proto ${P} metric 0`,
    `unicast fd00:64::/64 via fd00:18::3 dev d0 table 254 proto ${P} metric 1024`,
  ]);

  t.equal(await h.prog.call('remove', route('100.64.0.0/26', via('198.18.0.3', 'd0'))), true);
  t.equal(await h.prog.call('remove', route('fd00:64::/64', via('fd00:18::3'))), true);
  t.same(await ours(h), [`unicast 100.64.0.64/26 via 198.18.0.4 dev d0 table 254 proto ${P} metric 0`]);
  t.equal(await h.prog.call('remove', route('100.64.0.0/26', via('198.18.0.3'))), false, 'absent: success, reported as gone');
});

t.test('blackhole and unreachable routes, metrics, non-main tables', { skip }, async (t) => {
  const h = await host(t);
  const routes = [
    route('100.64.1.0/24', { type: 'blackhole' }),
    route('100.64.2.0/24', { type: 'unreachable', metric: 7 }),
    route('fd00:65::/64', { type: 'blackhole', table: 1000 }),
    route('fd00:66::/64', { type: 'unreachable', table: 100 }),
    route('100.64.3.0/24', { ...via('198.18.0.2'), table: 1000, metric: 20 }),
    route('100.64.4.0/24', { ifName: 'd0', table: 70000 }), // device route, 32-bit table id
  ];
  for (const r of routes) await h.prog.call('add', r);
  t.same(await ours(h), [
    `blackhole 100.64.1.0/24 via - dev - table 254 proto ${P} metric 0`,
    `blackhole fd00:65::/64 via - dev lo table 1000 proto ${P} metric 1024`,
    `unicast 100.64.3.0/24 via 198.18.0.2 dev d0 table 1000 proto ${P} metric 20`,
    `unicast 100.64.4.0/24 via - dev d0 table 70000 proto ${P} metric 0`,
    `unreachable 100.64.2.0/24 via - dev - table 254 proto ${P} metric 7`,
    `unreachable fd00:66::/64 via - dev lo table 100 proto ${P} metric 1024`,
  ]);
  const listed: KernelRoute[] = [];
  for (const table of [254, 1000, 100, 70000]) listed.push(...(await h.prog.list({ table, protocol: P })));
  t.same(listed.map(render).sort(), await ours(h), 'list agrees with ip route');
  const r4 = await h.prog.list({ table: 1000, family: 4 });
  t.same(r4.map(render), [`unicast 100.64.3.0/24 via 198.18.0.2 dev d0 table 1000 proto ${P} metric 20`], 'family filter');
  for (const r of listed) t.equal(await h.prog.call('remove', r), true, `remove ${render(r)}`);
  t.same(await ours(h), []);
});

t.test('list returns exactly what ip route shows, with each protocol', { skip }, async (t) => {
  const h = await host(t);
  await h.lab.exec(h.ns, 'ip', ['route', 'add', '100.64.50.0/24', 'via', '198.18.0.9', 'proto', 'static']);
  await h.lab.exec(h.ns, 'ip', ['route', 'add', '100.64.51.0/24', 'via', '198.18.0.9', 'proto', '12', 'metric', '5']);
  await h.lab.exec(h.ns, 'ip', ['-6', 'route', 'add', 'fd00:70::/64', 'via', 'fd00:18::9', 'proto', 'static']);
  await h.prog.call('add', route('100.64.0.1/32', via('198.18.0.2')));
  await h.prog.call('add', route('fd00:64::/64', { type: 'blackhole' }));
  for (const family of [4, 6] as const) {
    const listed = await h.prog.list({ family, table: 254 });
    const shown = (await ipRoutes(h.lab, h.ns, family)).filter((l) => l.includes(' table 254 '));
    t.same(listed.map(render).sort(), shown.sort(), `IPv${family} main table`);
  }
  const statics = await h.prog.list({ table: 254, protocol: 4 });
  t.same(statics.map(render).sort(), [
    'unicast 100.64.50.0/24 via 198.18.0.9 dev d0 table 254 proto 4 metric 0',
    'unicast fd00:70::/64 via fd00:18::9 dev d0 table 254 proto 4 metric 1024',
  ]);
  const local = await h.prog.list({ table: 255, family: 4 });
  t.ok(local.some((r) => r.type === 'local' && render(r).startsWith('local 198.18.0.1/32')), 'local table readable');
});

t.test('apply reconciles our routes and never touches foreign ones', { skip }, async (t) => {
  const h = await host(t);
  await h.lab.exec(h.ns, 'ip', ['route', 'add', '100.64.50.0/24', 'via', '198.18.0.9', 'proto', 'static']);
  await h.lab.exec(h.ns, 'ip', ['route', 'add', '100.64.60.0/24', 'via', '198.18.0.9', 'proto', 'boot']);
  await h.prog.call('add', route('100.64.0.0/26', via('198.18.0.2'))); // stale: to be removed
  await h.prog.call('add', route('100.64.1.0/26', via('198.18.0.2'))); // to be replaced
  await h.prog.call('add', route('100.64.9.0/32', { ifName: 'd0p' })); // CNI-style, kept
  const foreignBefore = (await ipRoutes(h.lab, h.ns, 4)).filter((l) => !l.includes(` proto ${P} `)).sort();

  const desired = [
    route('100.64.1.0/26', via('198.18.0.3')),
    route('100.64.2.0/26', via('198.18.0.2', 'd0')),
    route('100.64.50.0/24', via('198.18.0.4')), // held by a static route: conflict
    route('fd00:64::/64', via('fd00:18::2')),
  ];
  const observed = [...(await h.prog.list({ table: 254 }))];
  const diff = diffRoutes(desired, observed, { protocol: P, keep: (r) => r.dst.len === 32 && r.ifName === 'd0p' });
  t.same(diff.conflicts.map((c) => [render(c.desired), c.foreign.protocol]), [
    [`unicast 100.64.50.0/24 via 198.18.0.4 dev - table 254 proto ${P} metric 0`, 4],
  ]);
  const result = await h.prog.apply(diff);
  t.same(result, { added: 2, replaced: 1, removed: 1, alreadyGone: 0, errors: [] });
  t.same(await ours(h), [
    `unicast 100.64.1.0/26 via 198.18.0.3 dev d0 table 254 proto ${P} metric 0`,
    `unicast 100.64.2.0/26 via 198.18.0.2 dev d0 table 254 proto ${P} metric 0`,
    `unicast 100.64.9.0/32 via - dev d0p table 254 proto ${P} metric 0`,
    `unicast fd00:64::/64 via fd00:18::2 dev d0 table 254 proto ${P} metric 1024`,
  ]);
  const foreignAfter = (await ipRoutes(h.lab, h.ns, 4)).filter((l) => !l.includes(` proto ${P} `)).sort();
  t.same(foreignAfter, foreignBefore, 'foreign routes untouched');

  const again = diffRoutes(desired, await h.prog.list({ table: 254 }), { protocol: P, keep: (r) => r.ifName === 'd0p' });
  t.same([again.add, again.replace, again.remove], [[], [], []], 'nothing left to do');
  t.equal(again.conflicts.length, 1, 'the conflict is still reported');

  const err = await rejection(h.prog.call('remove', { ...route('100.64.50.0/24', via('198.18.0.9')), protocol: 4 }));
  t.equal(err.error.code, 'E_INTERNAL', 'refuses to remove a foreign route');
  t.ok((await ipRoutes(h.lab, h.ns, 4)).some((l) => l.startsWith('unicast 100.64.50.0/24 via 198.18.0.9')));
});

t.test('kernel refusals map to the error taxonomy', { skip }, async (t) => {
  const h = await host(t);
  const r = route('100.64.0.0/26', via('198.18.0.2'));
  await h.prog.call('add', r);
  const exists = await rejection(h.prog.call('add', r));
  t.match(exists.error, { code: 'E_CONFLICT', details: { errno: 'EEXIST', op: 'add' } });
  t.match(exists.error.message, /100\.64\.0\.0\/26 via 198\.18\.0\.2/, 'message names the route');

  const unreachable = await rejection(h.prog.call('add', route('100.64.1.0/26', via('198.18.9.1'))));
  t.match(unreachable.error, { code: 'E_KERNEL', details: { errno: 'ENETUNREACH' } });
  t.match(unreachable.error.message, /100\.64\.1\.0\/26 via 198\.18\.9\.1.*ENETUNREACH/);

  const noDev = await rejection(h.prog.call('add', route('100.64.2.0/26', via('198.18.0.2', 'nosuch0'))));
  t.match(noDev.error, { code: 'E_NOT_FOUND', details: { errno: 'ENODEV' } });
  t.equal(await h.prog.call('remove', route('100.64.2.0/26', via('198.18.0.2', 'nosuch0'))), false, 'no device: already gone');


  const foreignKey = route('100.64.3.0/26', via('198.18.0.2'));
  await h.lab.exec(h.ns, 'ip', ['route', 'add', '100.64.3.0/26', 'via', '198.18.0.5', 'proto', 'static']);
  t.match((await rejection(h.prog.call('add', foreignKey))).error, { details: { errno: 'EEXIST' } });

  t.equal(await h.prog.call('remove', route('100.64.200.0/24', { type: 'blackhole' })), false, 'absent blackhole');
  t.equal(await h.prog.call('remove', route('fd00:99::/64', via('fd00:18::2'))), false, 'absent IPv6');
  t.equal(await h.prog.call('remove', route('100.64.3.0/26', via('198.18.0.5'))), false, 'a foreign route is not ours to find');
  t.ok((await ipRoutes(h.lab, h.ns, 4)).some((l) => l.startsWith('unicast 100.64.3.0/26 via 198.18.0.5')));

  const failed = await h.prog.apply({ add: [r, route('100.64.4.0/26', via('198.18.0.2'))], replace: [], remove: [] });
  t.equal(failed.added, 1);
  t.match(failed.errors, [{ op: 'add', error: { code: 'E_CONFLICT', details: { errno: 'EEXIST' } } }]);

  // A device re-created under the same name gets a new index: the cache recovers.
  await h.lab.veth(h.ns, 'v1', h.ns, 'v1p');
  await h.prog.call('add', route('100.64.5.0/26', { ifName: 'v1' }));
  await h.lab.exec(h.ns, 'ip', ['link', 'del', 'v1']);
  await h.lab.veth(h.ns, 'v1', h.ns, 'v1p');
  await h.prog.call('add', route('100.64.6.0/26', { ifName: 'v1' }));
  t.ok((await ours(h)).includes(`unicast 100.64.6.0/26 via - dev v1 table 254 proto ${P} metric 0`), 'installed on the new v1');
});

function many(n: number, family: 4 | 6): KernelRoute[] {
  const out: KernelRoute[] = [];
  for (let i = 0; i < n; i++) {
    if (family === 4) out.push(route(`100.64.${i >> 8}.${i & 255}/32`, via('198.18.0.2')));
    else out.push(route(`fd00:64::${i.toString(16)}/128`, via('fd00:18::2', 'd0')));
  }
  return out;
}

t.test('5,000 routes with bounded concurrency', { skip }, async (t) => {
  const h = await host(t);
  const routes = [...many(4000, 4), ...many(1000, 6)];
  const added = await h.prog.apply({ add: routes, replace: [], remove: [] });
  t.same({ ...added, errors: added.errors.length }, { added: 5000, replaced: 0, removed: 0, alreadyGone: 0, errors: 0 });
  const stats = await h.prog.call<{ requests: number; peakInFlight: number }>('stats');
  t.equal(stats.peakInFlight, 64, 'the window is used and never exceeded');
  t.equal((await ours(h)).length, 5000, 'ip route shows all of them');
  t.equal((await h.prog.list({ table: 254, protocol: P })).length, 5000, 'list sees all of them');
  const removed = await h.prog.apply({ add: [], replace: [], remove: routes });
  t.equal(removed.removed, 5000);
  t.same(await ours(h), []);
});

t.test('a smaller configured window is respected', { skip }, async (t) => {
  const h = await host(t, { maxInFlight: 8 });
  const routes = many(1000, 4);
  t.equal((await h.prog.apply({ add: routes, replace: [], remove: [] })).added, 1000);
  t.equal((await h.prog.call<{ peakInFlight: number }>('stats')).peakInFlight, 8);
});

t.test('a configured protocol number', { skip }, async (t) => {
  const h = await host(t, { protocol: 201 });
  t.equal(await h.prog.call('protocol'), 201);
  await h.prog.call('add', { ...route('100.64.0.0/26', via('198.18.0.2')), protocol: 0 });
  const rows = await ipRoutes(h.lab, h.ns, 4);
  t.ok(rows.includes('unicast 100.64.0.0/26 via 198.18.0.2 dev d0 table 254 proto 201 metric 0'), 'stamped with 201');
});
