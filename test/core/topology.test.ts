import t from 'tap';
import { stringify } from 'yaml';
import { formatPrefix, parseAddress, parsePrefix } from '../../src/core/cidr.js';
import { parseTopology } from '../../src/core/topology-parse.js';
import {
  allSubnets,
  findSubnet,
  homeSizeIn,
  routeTables,
  subnetForHost,
  subnetForPod,
  type Topology,
} from '../../src/core/topology.js';

function topology(doc: unknown): Topology {
  const r = parseTopology(stringify(doc), 'f.yaml');
  if ('errors' in r) throw new Error(JSON.stringify(r.errors));
  return r.topology;
}

const topo = topology({
  network: '100.96.0.0/11',
  nodeHomeSize: 20,
  zones: [
    {
      name: 'z1',
      subnets: [
        { id: 'subnet-a', cidr: '198.18.0.0/24', routeTable: 'rtb-1' },
        { id: 'subnet-b', cidr: '198.18.1.0/24', podPrefix: '100.127.255.0/24', routeTable: 'rtb-1' },
      ],
    },
    { name: 'z2', subnets: [{ id: 'subnet-c', cidr: '198.18.2.0/24' }] },
  ],
});

t.test('lookups over a parsed topology', async (t) => {
  t.same(allSubnets(topo).map((s) => s.id), ['subnet-a', 'subnet-b', 'subnet-c'], 'file order');
  t.equal(findSubnet(topo, 'subnet-c')?.zone, 'z2');
  t.equal(findSubnet(topo, 'subnet-x'), undefined);
  t.equal(subnetForHost(topo, parseAddress('198.18.1.9'))?.id, 'subnet-b');
  t.equal(subnetForHost(topo, parseAddress('198.18.3.1')), undefined);
  t.equal(subnetForPod(topo, parseAddress('100.97.0.1'))?.id, 'subnet-c', 'carved second: 100.97.0.0/16');
  t.equal(subnetForPod(topo, parsePrefix('100.127.255.64/26'))?.id, 'subnet-b');
  t.equal(subnetForPod(topo, parsePrefix('100.98.0.0/26')), undefined);
  t.same(routeTables(topo), ['rtb-1', 'main'], 'a subnet without a route table uses "main"');
});

t.test('a node home never exceeds its subnet pod prefix', async (t) => {
  const a = findSubnet(topo, 'subnet-a');
  const b = findSubnet(topo, 'subnet-b');
  t.ok(a !== undefined && b !== undefined);
  if (a === undefined || b === undefined) return;
  t.equal(formatPrefix(a.podPrefix), '100.96.0.0/16');
  t.equal(homeSizeIn(topo, a), 20);
  t.equal(homeSizeIn(topo, b), 24, 'the /24 pod prefix bounds the /20 home');
});
