// The route inputs in process: a fake cluster view, the routes this node
// wants from it, and the dirty marks its consumers get on changes.

import t from 'tap';
import { formatAddress, formatPrefix, parseAddress, parsePrefix } from '../../src/core/cidr.js';
import type { KernelRoute } from '../../src/core/route.js';
import type { Subnet } from '../../src/core/topology.js';
import type { AdvertisementInfo, BlockInfo } from '../../src/state/validate.js';
import { RouteInputs, type RouteSettings, type RouteView } from '../../daemon/route-inputs.js';

const P = parsePrefix;
const subnetA: Subnet = { id: 'subnet-a', zone: 'z1', cidr: P('198.18.0.0/24'), podPrefix: P('100.64.0.0/20'), podPrefixExplicit: true, routeTable: undefined };
const subnetB: Subnet = { id: 'subnet-b', zone: 'z1', cidr: P('198.18.1.0/24'), podPrefix: P('100.64.16.0/20'), podPrefixExplicit: true, routeTable: undefined };

class FakeView implements RouteView {
  blocks = new Map<string, BlockInfo[]>();
  adverts = new Map<string, AdvertisementInfo>();
  blocksByNode(): ReadonlyMap<string, readonly BlockInfo[]> {
    return this.blocks;
  }
  advertisements(): ReadonlyMap<string, AdvertisementInfo> {
    return this.adverts;
  }
  advertise(node: string, subnet: Subnet, hostIP: string, prefixes: string[]): void {
    this.adverts.set(`/routes/${subnet.id}/${node}`, { node, subnet, nextHop: parseAddress(hostIP), prefixes: prefixes.map(P), rejected: [], instanceId: '' });
  }
}

const settings: RouteSettings = { node: 'n1', hostIP: '198.18.0.10', subnet: 'subnet-a', iface: 'eth0', table: 254, protocol: 201, ownBlocks: 'unreachable' };
const show = (routes: KernelRoute[] | undefined): string[] | undefined =>
  routes?.map((r) => `${formatPrefix(r.dst)} ${r.type}${r.gateway ? ` via ${formatAddress(r.gateway)} dev ${r.ifName}` : ''} table ${r.table} proto ${r.protocol}`).sort();

t.test('no routes until the view is synced', async (t) => {
  const view = new FakeView();
  view.advertise('n2', subnetA, '198.18.0.11', ['100.64.0.64/26']);
  let synced = false;
  const inputs = new RouteInputs(view, settings, () => synced);
  t.equal(inputs.desired(), undefined);
  synced = true;
  t.same(show(inputs.desired()), ['100.64.0.64/26 unicast via 198.18.0.11 dev eth0 table 254 proto 201']);
});

t.test('same-subnet peers via their host IP, own blocks unreachable, nothing for other subnets or ourselves', async (t) => {
  const view = new FakeView();
  view.advertise('n1', subnetA, '198.18.0.10', ['100.64.0.0/26']);
  view.advertise('n2', subnetA, '198.18.0.11', ['100.64.0.64/26', '100.64.0.128/26']);
  view.advertise('n3', subnetB, '198.18.1.12', ['100.64.16.0/26']);
  view.blocks.set('n1', [
    { prefix: P('100.64.0.0/27'), node: 'n1', subnet: subnetA },
    { prefix: P('100.64.0.32/27'), node: 'n1', subnet: subnetA },
    { prefix: P('100.64.16.64/26'), node: 'n1', subnet: subnetB },
  ]);
  const inputs = new RouteInputs(view, settings, () => true);
  t.same(show(inputs.desired()), [
    '100.64.0.0/26 unreachable table 254 proto 201',
    '100.64.0.128/26 unicast via 198.18.0.11 dev eth0 table 254 proto 201',
    '100.64.0.64/26 unicast via 198.18.0.11 dev eth0 table 254 proto 201',
  ]);
  const none = new RouteInputs(view, { ...settings, ownBlocks: 'none' }, () => true);
  t.same(show(none.desired()), [
    '100.64.0.128/26 unicast via 198.18.0.11 dev eth0 table 254 proto 201',
    '100.64.0.64/26 unicast via 198.18.0.11 dev eth0 table 254 proto 201',
  ]);
  view.adverts.clear();
  t.same(show(inputs.desired()), ['100.64.0.0/26 unreachable table 254 proto 201'], 'recomputed from the view on each call');
});

t.test('every change marks every consumer dirty', async (t) => {
  const inputs = new RouteInputs(new FakeView(), settings, () => true);
  const marks: string[] = [];
  inputs.subscribe((reason) => marks.push(`agent: ${reason}`));
  inputs.subscribe((reason) => marks.push(`vpc: ${reason}`));
  inputs.onChanges([{ key: '/trellis/v1/routes/subnet-a/n2' }, { key: '/trellis/v1/nodes/n2' }]);
  inputs.onChanges([{ topology: true }]);
  t.same(marks, ['agent: etcd change', 'vpc: etcd change', 'agent: etcd change', 'vpc: etcd change'], 'once per consumer per batch');
});

t.test('pod routes are kept', async (t) => {
  const inputs = new RouteInputs(new FakeView(), settings, () => true);
  const base = { table: 254, protocol: 201, type: 'unicast' as const };
  t.ok(inputs.keep({ ...base, dst: P('100.64.0.5/32'), ifName: 'trl1234' }), 'a /32 to a veth');
  t.notOk(inputs.keep({ ...base, dst: P('100.64.0.5/32'), ifName: 'eth0' }), 'not via the peer interface');
  t.notOk(inputs.keep({ ...base, dst: P('100.64.0.0/26'), ifName: 'trl1234' }), 'not a block route');
  t.notOk(inputs.keep({ ...base, protocol: 4, dst: P('100.64.0.5/32'), ifName: 'trl1234' }), 'not another protocol');
});
