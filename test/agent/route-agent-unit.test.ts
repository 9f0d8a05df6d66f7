// The route agent in process, over a fake kernel table and route watch: what
// a pass lists, adds, replaces and removes, when it lists again, how kernel
// events and failures lead to further passes. No root, no netlink.

import t from 'tap';
import pino from 'pino';
import { formatAddress, formatPrefix, parseAddress, parsePrefix } from '../../src/core/cidr.js';
import { routeKey, type KernelRoute } from '../../src/core/route.js';
import type { ApplyResult } from '../../src/netlink/route-programmer.js';
import type { RouteEvent } from '../../src/netlink/route-watch.js';
import { TrellisError, ErrorCode } from '../../src/errors.js';
import { Metrics } from '../../daemon/metrics.js';
import { RouteAgent, type RouteAgentProgrammer } from '../../daemon/route-agent.js';

const PROTO = 201;
const TABLE = 254;
const log = pino({ level: 'silent' });

const via = (dst: string, gw: string, protocol = PROTO): KernelRoute => ({ dst: parsePrefix(dst), type: 'unicast', gateway: parseAddress(gw), ifName: 'eth0', table: TABLE, protocol });
const pod = (dst: string): KernelRoute => ({ dst: parsePrefix(dst), type: 'unicast', ifName: 'trl1', table: TABLE, protocol: PROTO });
const show = (r: KernelRoute): string => `${formatPrefix(r.dst)}${r.gateway ? ` via ${formatAddress(r.gateway)}` : ''} proto ${r.protocol}`;

class FakeKernel implements RouteAgentProgrammer {
  table = new Map<string, KernelRoute>();
  lists = 0;
  applies = 0;
  /** Applies still to fail (every route change of the call fails). */
  failApplies = 0;
  listener: ((e: RouteEvent) => void) | undefined;
  closed = false;
  constructor(routes: KernelRoute[]) {
    for (const r of routes) this.table.set(routeKey(r), r);
  }
  async list(filter: { table: number }): Promise<KernelRoute[]> {
    this.lists++;
    return [...this.table.values()].filter((r) => r.table === filter.table);
  }
  async apply(diff: { add: KernelRoute[]; replace: KernelRoute[]; remove: KernelRoute[] }): Promise<ApplyResult> {
    this.applies++;
    const result: ApplyResult = { added: 0, replaced: 0, removed: 0, alreadyGone: 0, errors: [] };
    const fail = this.failApplies > 0;
    if (fail) this.failApplies--;
    for (const [op, routes] of [['add', diff.add], ['replace', diff.replace], ['remove', diff.remove]] as const) {
      for (const r of routes) {
        if (fail) {
          result.errors.push({ op, route: r, error: new TrellisError(ErrorCode.Kernel, 'EPERM') });
          continue;
        }
        if (op === 'remove') this.table.delete(routeKey(r));
        else this.table.set(routeKey(r), r);
        if (op === 'add') result.added++;
        else if (op === 'replace') result.replaced++;
        else result.removed++;
      }
    }
    return result;
  }
  async watch(onChange: (e: RouteEvent) => void): Promise<{ close(): void }> {
    this.listener = onChange;
    return { close: () => void (this.closed = true) };
  }
  routes(): string[] {
    return [...this.table.values()].map(show).sort();
  }
  /** Someone else deletes a route (the watch reports it). */
  externalDelete(r: KernelRoute): void {
    this.table.delete(routeKey(r));
    this.listener?.({ kind: 'delete', route: r });
  }
}

function agentOver(kernel: FakeKernel, desired: { routes: KernelRoute[] | undefined }) {
  const metrics = new Metrics();
  const agent = new RouteAgent({
    programmer: kernel,
    compute: () => desired.routes,
    keep: (r) => r.ifName === 'trl1',
    table: TABLE,
    protocol: PROTO,
    resyncMs: 3_600_000,
    log,
    metrics,
    coalesceMs: 0,
    now: () => 42,
  });
  t.teardown(() => agent.stop());
  return { agent, metrics };
}

/** Lets scheduled passes run until `done()` holds. */
async function settle(done: () => boolean): Promise<void> {
  for (let i = 0; !done(); i++) {
    if (i > 20_000) throw new Error('the expected pass never came');
    await new Promise((r) => setTimeout(r, 1));
  }
}

t.test('nothing is touched until the desired routes are known', async (t) => {
  const kernel = new FakeKernel([via('100.64.1.0/26', '198.18.0.11')]);
  const desired: { routes: KernelRoute[] | undefined } = { routes: undefined };
  const { agent } = agentOver(kernel, desired);
  await agent.pass();
  t.equal(kernel.lists, 0, 'not even listed');
  t.equal(agent.passes, 0);
  t.notOk(agent.ready);
  t.same(kernel.routes(), ['100.64.1.0/26 via 198.18.0.11 proto 201']);
});

t.test('a pass reconciles: adds, replaces and removes ours, keeps pod routes and foreign ones', async (t) => {
  const kernel = new FakeKernel([
    via('100.64.1.0/26', '198.18.0.99'), // ours, wrong next hop
    via('100.64.2.0/26', '198.18.0.12'), // ours, stale
    pod('100.64.0.5/32'), // a pod route: kept
    via('100.64.9.0/26', '198.18.0.20', 4), // another protocol, not wanted: left alone
    via('100.64.3.0/26', '198.18.0.30', 4), // another protocol holding a wanted destination: a conflict
  ]);
  const desired = { routes: [via('100.64.1.0/26', '198.18.0.11'), via('100.64.4.0/26', '198.18.0.14'), via('100.64.3.0/26', '198.18.0.13')] };
  const { agent } = agentOver(kernel, desired);
  await agent.pass();
  t.same(kernel.routes(), [
    '100.64.0.5/32 proto 201',
    '100.64.1.0/26 via 198.18.0.11 proto 201',
    '100.64.3.0/26 via 198.18.0.30 proto 4',
    '100.64.4.0/26 via 198.18.0.14 proto 201',
    '100.64.9.0/26 via 198.18.0.20 proto 4',
  ]);
  t.equal(kernel.lists, 1);
  t.equal(agent.passes, 1);
  t.ok(agent.ready, 'first full sync done');
  t.equal(agent.lastFullSync, 42);
});

t.test('later passes diff against the kept table, listing again only when needed', async (t) => {
  const kernel = new FakeKernel([]);
  const desired = { routes: [via('100.64.1.0/26', '198.18.0.11')] };
  const { agent } = agentOver(kernel, desired);
  await agent.start();
  await settle(() => agent.passes === 1);
  desired.routes = [via('100.64.1.0/26', '198.18.0.11'), via('100.64.2.0/26', '198.18.0.12')];
  agent.markDirty('desired routes changed'); // as the route inputs do on a change from etcd
  await agent.pass();
  t.equal(kernel.lists, 1, 'no second dump of the table');
  t.same(kernel.routes(), ['100.64.1.0/26 via 198.18.0.11 proto 201', '100.64.2.0/26 via 198.18.0.12 proto 201']);
  const applies = kernel.applies;
  await agent.pass();
  t.equal(kernel.applies, applies, 'nothing to change: no apply');
  kernel.listener?.({ kind: 'resync', reason: 'overrun' });
  await settle(() => kernel.lists === 2);
  t.pass('a gap in the notifications makes the next pass list the table');
});

t.test('a route deleted under us is put back', async (t) => {
  const kernel = new FakeKernel([]);
  const desired = { routes: [via('100.64.1.0/26', '198.18.0.11')] };
  const { agent } = agentOver(kernel, desired);
  await agent.start();
  await settle(() => agent.passes === 1);
  kernel.externalDelete(via('100.64.1.0/26', '198.18.0.11'));
  await settle(() => agent.passes === 2);
  t.same(kernel.routes(), ['100.64.1.0/26 via 198.18.0.11 proto 201']);
  t.equal(kernel.lists, 1, 'the event kept the table current: no list');
  agent.stop();
  t.ok(kernel.closed, 'stop closes the watch');
});

t.test('a failed pass is retried, listing the table again', async (t) => {
  const kernel = new FakeKernel([]);
  kernel.failApplies = 2;
  const desired = { routes: [via('100.64.1.0/26', '198.18.0.11')] };
  const { agent, metrics } = agentOver(kernel, desired);
  await agent.start(); // no pass runs before the kernel watch is up
  await settle(() => kernel.applies >= 1);
  t.equal(agent.passes, 0, 'a failed pass is not a completed one');
  t.same(kernel.routes(), []);
  await settle(() => agent.passes === 1);
  t.same(kernel.routes(), ['100.64.1.0/26 via 198.18.0.11 proto 201'], 'converged with no outside call');
  t.equal(kernel.applies, 3, 'two failures, then success');
  t.equal(kernel.lists, 3, 'each retry listed the table again');
  const text = await metrics.registry.metrics();
  t.match(text, /trellis_reconcile_passes_total\{result="error"\} 2/);
  t.match(text, /trellis_reconcile_passes_total\{result="ok"\} 1/);
});
