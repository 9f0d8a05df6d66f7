// Parsing valid topology files, defaults, and how problems are collected.
// One case per validation rule: topology-parse-errors.test.ts.
import t from 'tap';
import { stringify } from 'yaml';
import { readFileSync } from 'node:fs';
import { formatPrefix, parsePrefix } from '../../src/core/cidr.js';
import { formatIssues, loadTopology } from '../../src/core/topology-parse.js';
import type { Topology } from '../../src/core/topology.js';
import { ErrorCode } from '../../src/errors.js';
import { base, doc, errorsOf, parse, valid, type Doc } from '../fixtures/topology/documents.js';

t.test('the base document is valid and resolves exactly', async (t) => {
  const topo = valid(stringify(base()));
  const P = parsePrefix;
  t.same(topo, {
    network: P('100.96.0.0/11'),
    blockSize: 26,
    nodeHomeSize: 24,
    subnetSize: 16,
    zones: [
      {
        name: 'z1',
        subnets: [
          { id: 'subnet-a', zone: 'z1', cidr: P('198.18.0.0/24'), podPrefix: P('100.96.0.0/16'), podPrefixExplicit: false, routeTable: 'rtb-1' },
          { id: 'subnet-b', zone: 'z1', cidr: P('198.18.1.0/24'), podPrefix: P('100.97.0.0/16'), podPrefixExplicit: false, routeTable: undefined },
        ],
      },
      {
        name: 'z2',
        subnets: [
          { id: 'subnet-c', zone: 'z2', cidr: P('198.18.2.0/24'), podPrefix: P('100.112.0.0/14'), podPrefixExplicit: true, routeTable: undefined },
        ],
      },
    ],
  });
});

t.test('every problem is reported, in file order', async (t) => {
  const text = [
    'network: 100.96.0.1/11',
    'blockSize: 40',
    'extra: 1',
    'zones:',
    '  - name: z1',
    '    subnets:',
    '      - id: a',
    '        cidr: 198.18.0.0/24',
    '        podPrefix: 100.64.0.0/16',
    '      - id: a',
    '        cidr: 198.18.0.0/25',
    '  - name: z1',
    '    subnets: []',
  ].join('\n');
  const errors = errorsOf(text);
  t.same(
    errors.map((e) => e.path),
    ['extra', 'network', 'zones[0].subnets[1].id', 'zones[0].subnets[1].cidr', 'zones[1].name', 'zones[1].subnets'],
  );
  t.same(formatIssues('t.yaml', errors.slice(0, 2)), [
    't.yaml: extra: unknown key "extra" (expected one of: network, blockSize, nodeHomeSize, subnetSize, zones)',
    't.yaml: network: 100.96.0.1/11 is not a canonical prefix: host bits are set (did you mean 100.96.0.0/11?)',
  ]);
  t.same(formatIssues('t.yaml', [{ path: '', message: 'whole file' }]), ['t.yaml: whole file']);
});

t.test('defaults follow the network', async (t) => {
  const one = (network: string, extra: Doc = {}): Topology =>
    valid(stringify({ network, ...extra, zones: [{ name: 'z', subnets: [{ id: 's', cidr: '198.18.0.0/24' }] }] }));
  const sizes = (x: Topology): number[] => [x.blockSize, x.nodeHomeSize, x.subnetSize];
  t.same(sizes(one('100.96.0.0/11')), [26, 24, 16], 'IPv4: /26 blocks, /24 homes, network + 5');
  t.same(sizes(one('100.96.0.0/24')), [26, 24, 26], 'subnetSize never beyond blockSize');
  t.same(sizes(one('100.96.0.0/26')), [26, 26, 26], 'nodeHomeSize never shorter than the network');
  t.same(sizes(one('100.96.0.0/11', { blockSize: 28 })), [28, 26, 16], 'nodeHomeSize follows blockSize');
  t.same(sizes(one('100.96.0.0/11', { nodeHomeSize: 11, subnetSize: 26 })), [26, 11, 26], 'bounds are inclusive');
  t.same(sizes(one('::ffff:6460:0/107')), [122, 120, 112], 'IPv6: /122 blocks');
  const v6 = one('::ffff:6460:0/107');
  t.equal(formatPrefix(v6.zones[0]?.subnets[0]?.podPrefix ?? v6.network), '::ffff:6460:0/112', 'IPv6 carving');
});

t.test('JSON is accepted, and so is a byte order mark', async (t) => {
  const json = JSON.stringify(base());
  t.same(valid(json), valid(stringify(base())));
  t.same(valid(`\uFEFF${json}`), valid(json));
  const broken = parse('{\n  "network": "100.96.0.0/11",\n  "zones": [\n}\n');
  t.match(broken, [{ path: '', message: /^YAML syntax error at line 4, column 1: / }], 'broken JSON: line and column');
});

t.test('the example file is valid', async (t) => {
  const text = readFileSync(new URL('../../examples/topology.yaml', import.meta.url), 'utf8');
  const topo = valid(text);
  t.equal(topo.zones.length, 3);
  const subnets = topo.zones.flatMap((z) => z.subnets);
  t.equal(subnets.length, 6);
  t.ok(subnets.some((s) => s.podPrefixExplicit) && subnets.some((s) => !s.podPrefixExplicit), 'explicit and carved');
  t.same(
    subnets.map((s) => formatPrefix(s.podPrefix)),
    ['100.96.0.0/16', '100.97.0.0/16', '100.98.0.0/15', '100.100.0.0/16', '100.101.0.0/16', '100.102.0.0/16'],
    'the prefixes the example file announces in its comments',
  );
});

t.test('loadTopology throws E_TOPOLOGY listing every issue', async (t) => {
  t.equal(loadTopology(stringify(base()), 'f.yaml').subnetSize, 16);
  t.throws(() => loadTopology('zones: []\n', 'bad.yaml'), {
    name: 'TrellisError',
    code: ErrorCode.Topology,
    message: 'invalid topology:\nbad.yaml: network: required, but missing: the pod network, e.g. 100.96.0.0/11\nbad.yaml: zones: must list at least one zone',
    details: { file: 'bad.yaml', issues: [{ path: 'network' }, { path: 'zones' }] },
  });
});

t.test('checks that depend on a broken value are skipped, the rest still run', async (t) => {
  const noBlock = errorsOf(doc((d) => Object.assign(d, { blockSize: 'x', nodeHomeSize: 12, subnetSize: 40 })));
  t.same(
    noBlock,
    [
      { path: 'blockSize', message: 'expected an integer prefix length, got string "x"' },
      { path: 'subnetSize', message: '/40 is out of range: it must be 32 or less (the longest IPv4 prefix)' },
    ],
    'without a block size, nodeHomeSize and subnetSize are checked against the network and the family',
  );
  const noNetwork = errorsOf(
    doc((d) => {
      d.network = 'pods';
      d.blockSize = 40;
      d.zones[0].subnets[1].podPrefix = '100.113.0.0/16';
      d.zones[0].subnets[1].cidr = '198.18.0.0/24';
    }),
  );
  t.same(
    noNetwork.map((e) => e.path),
    ['network', 'zones[0].subnets[1].cidr', 'zones[1].subnets[0].podPrefix'],
    'without a network: no size ranges, but host CIDRs and pod prefix overlaps are still checked',
  );
  const noId = errorsOf(
    doc((d) => {
      delete d.zones[0].subnets[0].id;
      d.zones[0].subnets[1].cidr = '198.18.0.0/24';
    }),
  );
  t.same(noId.map((e) => e.message), [
    'required, but missing: the subnet id, e.g. subnet-0a1b2c',
    'host CIDR 198.18.0.0/24 is already the host CIDR of the subnet at zones[0].subnets[0] (zones[0].subnets[0].cidr)',
  ]);
  const nullName = errorsOf(doc((d) => (d.zones[0].name = null)));
  t.same(nullName, [{ path: 'zones[0].name', message: 'expected zone name as a string, got null' }]);
});

t.test('YAML anchors and merge keys are resolved', async (t) => {
  const text = [
    'network: 100.96.0.0/11',
    'zones:',
    '  - name: z1',
    '    subnets:',
    '      - &a { id: subnet-a, cidr: 198.18.0.0/24, routeTable: rtb-1 }',
    '      - { <<: *a, id: subnet-b, cidr: 198.18.1.0/24 }',
  ].join('\n');
  const topo = valid(text);
  t.same(
    topo.zones[0]?.subnets.map((s) => [s.id, s.routeTable]),
    [
      ['subnet-a', 'rtb-1'],
      ['subnet-b', 'rtb-1'],
    ],
  );
});
