// One case per validation rule of the topology file: each breaks exactly one
// rule of a valid document and must yield exactly one issue, with its path
// and its message.
import t from 'tap';
import { stringify } from 'yaml';
import { base, doc, errorsOf } from '../fixtures/topology/documents.js';

// [name, file text, expected path, expected message]
const cases: Array<[string, string, string, string | RegExp]> = [
  // YAML and file shape
  ['malformed YAML', 'network: [100.96.0.0/11\nzones: []\n', '', /^YAML syntax error at line \d+, column \d+: /],
  ['duplicate key', 'network: 100.96.0.0/11\nnetwork: 100.96.0.0/12\n', '', 'YAML syntax error at line 2, column 1: Map keys must be unique'],
  ['unresolved tag', 'network: !cidr 100.96.0.0/11\n', '', /^YAML syntax error at line 1, column 10: .*!cidr/],
  [
    'too many aliases',
    `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n`,
    '',
    /^YAML error: Excessive alias count/,
  ],
  ['empty file', '', '', 'f.yaml is empty: expected a mapping with "network" and "zones"'],
  ['comments only', '# nothing here\n', '', 'f.yaml is empty: expected a mapping with "network" and "zones"'],
  ['top level is a list', '- 100.96.0.0/11\n', '', 'the topology must be a mapping with "network" and "zones", got a list'],
  ['top level is a string', 'hello\n', '', 'the topology must be a mapping with "network" and "zones", got string "hello"'],
  // unknown keys
  ['unknown root key (typo)', doc((d) => (d.zone = [])), 'zone', 'unknown key "zone" (did you mean "zones"?)'],
  [
    'unknown root key',
    doc((d) => (d.mtu = 9001)),
    'mtu',
    'unknown key "mtu" (expected one of: network, blockSize, nodeHomeSize, subnetSize, zones)',
  ],
  ['unknown zone key', doc((d) => (d.zones[1].region = 'r')), 'zones[1].region', 'unknown key "region" (expected one of: name, subnets)'],
  ['unknown subnet key (case)', doc((d) => (d.zones[0].subnets[1].podprefix = 'x')), 'zones[0].subnets[1].podprefix', 'unknown key "podprefix" (did you mean "podPrefix"?)'],
  ['inherited names are not keys', stringify(base()).replace('zones:', 'toString: 1\nzones:'), 'toString', /^unknown key "toString"/],
  // network
  ['missing network', doc((d) => delete d.network), 'network', 'required, but missing: the pod network, e.g. 100.96.0.0/11'],
  ['network not a string', doc((d) => (d.network = 100)), 'network', 'expected a CIDR prefix string, got number 100'],
  ['network not a prefix', doc((d) => (d.network = '100.96.0.0')), 'network', 'invalid CIDR prefix (missing "/length"): "100.96.0.0"'],
  [
    'network not canonical',
    doc((d) => (d.network = '100.96.0.1/11')),
    'network',
    '100.96.0.1/11 is not a canonical prefix: host bits are set (did you mean 100.96.0.0/11?)',
  ],
  // blockSize
  ['blockSize not an integer', doc((d) => (d.blockSize = 26.5)), 'blockSize', 'expected an integer prefix length, got number 26.5'],
  ['blockSize a string', doc((d) => (d.blockSize = '26')), 'blockSize', 'expected an integer prefix length, got string "26"'],
  ['blockSize a list', doc((d) => (d.blockSize = [26])), 'blockSize', 'expected an integer prefix length, got a list'],
  [
    'blockSize larger than the network',
    doc((d) => (d.blockSize = 10)),
    'blockSize',
    '/10 is out of range: it must be 11 or more (a block cannot be larger than the network 100.96.0.0/11)',
  ],
  ['blockSize beyond the family', doc((d) => (d.blockSize = 33)), 'blockSize', '/33 is out of range: it must be 32 or less (the longest IPv4 prefix)'],
  [
    'default blockSize larger than the network',
    doc((d) => {
      d.network = '100.96.0.0/28';
      d.zones = [{ name: 'z1', subnets: [{ id: 's', cidr: '198.18.0.0/24' }] }];
    }),
    'blockSize',
    'the default /26 is larger than the network 100.96.0.0/28: set blockSize to 28 or more',
  ],
  // nodeHomeSize
  [
    'nodeHomeSize larger than the network',
    doc((d) => (d.nodeHomeSize = 8)),
    'nodeHomeSize',
    '/8 is out of range: it must be 11 or more (a node home cannot be larger than the network 100.96.0.0/11)',
  ],
  [
    'nodeHomeSize smaller than a block',
    doc((d) => (d.nodeHomeSize = 27)),
    'nodeHomeSize',
    '/27 is out of range: it must be 26 or less (a node home holds whole /26 blocks)',
  ],
  ['nodeHomeSize not an integer', doc((d) => (d.nodeHomeSize = true)), 'nodeHomeSize', 'expected an integer prefix length, got boolean true'],
  // subnetSize
  [
    'subnetSize larger than the network',
    doc((d) => (d.subnetSize = 10)),
    'subnetSize',
    '/10 is out of range: it must be 11 or more (a carved pod prefix cannot be larger than the network 100.96.0.0/11)',
  ],
  [
    'subnetSize smaller than a block',
    doc((d) => {
      d.blockSize = 24;
      d.subnetSize = 25;
    }),
    'subnetSize',
    '/25 is out of range: it must be 24 or less (a carved pod prefix must hold a /24 block)',
  ],
  ['subnetSize null', doc((d) => (d.subnetSize = null)), 'subnetSize', 'expected an integer prefix length, got null'],
  // zones
  ['missing zones', doc((d) => delete d.zones), 'zones', 'required, but missing: a list of zones, each with a name and its subnets'],
  ['zones not a list', doc((d) => (d.zones = { z1: {} })), 'zones', 'expected a list of zones, got a mapping'],
  ['empty zones', doc((d) => (d.zones = [])), 'zones', 'must list at least one zone'],
  ['zone not a mapping', doc((d) => d.zones.push('z3')), 'zones[2]', 'expected a mapping with "name" and "subnets", got string "z3"'],
  ['zone without name', doc((d) => delete d.zones[1].name), 'zones[1].name', 'required, but missing: the zone name, e.g. us-east-1a'],
  [
    'zone name a number',
    doc((d) => (d.zones[1].name = 2)),
    'zones[1].name',
    'expected zone name as a string, got number 2 (quote it to make it a string)',
  ],
  [
    'zone name with bad characters',
    doc((d) => (d.zones[1].name = 'zone 2')),
    'zones[1].name',
    '"zone 2" is not a valid zone name: use 1 to 253 letters, digits, ".", "_" and "-", starting with a letter or digit',
  ],
  ['duplicate zone name', doc((d) => (d.zones[1].name = 'z1')), 'zones[1].name', 'duplicate zone name "z1" (first used by zones[0])'],
  ['zone without subnets', doc((d) => delete d.zones[1].subnets), 'zones[1].subnets', 'required, but missing: a list of subnets, each with an id and a host cidr'],
  ['subnets not a list', doc((d) => (d.zones[1].subnets = 'subnet-c')), 'zones[1].subnets', 'expected a list of subnets, got string "subnet-c"'],
  ['empty subnets', doc((d) => (d.zones[1].subnets = [])), 'zones[1].subnets', 'must list at least one subnet'],
  // subnets
  ['subnet not a mapping', doc((d) => d.zones[1].subnets.push(7)), 'zones[1].subnets[1]', 'expected a mapping with "id" and "cidr", got number 7'],
  ['subnet without id', doc((d) => delete d.zones[0].subnets[1].id), 'zones[0].subnets[1].id', 'required, but missing: the subnet id, e.g. subnet-0a1b2c'],
  [
    'subnet id with a slash',
    doc((d) => (d.zones[0].subnets[1].id = 'a/b')),
    'zones[0].subnets[1].id',
    '"a/b" is not a valid subnet id: use 1 to 253 letters, digits, ".", "_" and "-", starting with a letter or digit',
  ],
  [
    'subnet id starting with a dash',
    doc((d) => (d.zones[0].subnets[1].id = '-b')),
    'zones[0].subnets[1].id',
    '"-b" is not a valid subnet id: use 1 to 253 letters, digits, ".", "_" and "-", starting with a letter or digit',
  ],
  [
    'duplicate subnet id across zones',
    doc((d) => (d.zones[1].subnets[0].id = 'subnet-a')),
    'zones[1].subnets[0].id',
    'duplicate subnet id "subnet-a" (first used by zones[0].subnets[0])',
  ],
  [
    'subnet without host CIDR',
    doc((d) => delete d.zones[0].subnets[1].cidr),
    'zones[0].subnets[1].cidr',
    "required, but missing: the subnet's host CIDR, e.g. 198.18.0.0/24",
  ],
  [
    'host CIDR not canonical',
    doc((d) => (d.zones[0].subnets[1].cidr = '198.18.1.7/24')),
    'zones[0].subnets[1].cidr',
    '198.18.1.7/24 is not a canonical prefix: host bits are set (did you mean 198.18.1.0/24?)',
  ],
  [
    'host CIDR unparsable',
    doc((d) => (d.zones[0].subnets[1].cidr = '198.18.1.0/40')),
    'zones[0].subnets[1].cidr',
    'invalid CIDR prefix (length must be 0..32): "198.18.1.0/40"',
  ],
  [
    'host CIDR not a string',
    doc((d) => (d.zones[0].subnets[1].cidr = ['198.18.1.0/24'])),
    'zones[0].subnets[1].cidr',
    'expected a CIDR prefix string, got a list',
  ],
  [
    'host CIDR repeated',
    doc((d) => (d.zones[1].subnets[0].cidr = '198.18.0.0/24')),
    'zones[1].subnets[0].cidr',
    'host CIDR 198.18.0.0/24 is already the host CIDR of subnet subnet-a (zones[0].subnets[0].cidr)',
  ],
  [
    'host CIDRs overlapping',
    doc((d) => (d.zones[1].subnets[0].cidr = '198.18.1.128/25')),
    'zones[1].subnets[0].cidr',
    'host CIDR 198.18.1.128/25 overlaps 198.18.1.0/24, the host CIDR of subnet subnet-b (zones[0].subnets[1].cidr)',
  ],
  [
    'host CIDR inside the pod network',
    doc((d) => (d.zones[0].subnets[1].cidr = '100.127.255.0/24')),
    'zones[0].subnets[1].cidr',
    'host CIDR 100.127.255.0/24 overlaps the pod network 100.96.0.0/11: host and pod addresses must not mix',
  ],
  // pod prefixes
  [
    'pod prefix null',
    doc((d) => (d.zones[0].subnets[1].podPrefix = null)),
    'zones[0].subnets[1].podPrefix',
    'expected a CIDR prefix string, got null (omit the key to have one carved)',
  ],
  [
    'pod prefix not canonical',
    doc((d) => (d.zones[0].subnets[1].podPrefix = '100.100.0.0/13')),
    'zones[0].subnets[1].podPrefix',
    '100.100.0.0/13 is not a canonical prefix: host bits are set (did you mean 100.96.0.0/13?)',
  ],
  [
    'pod prefix of the other family',
    doc((d) => (d.zones[0].subnets[1].podPrefix = '::ffff:6464:0/112')),
    'zones[0].subnets[1].podPrefix',
    '::ffff:6464:0/112 is IPv6 but the network 100.96.0.0/11 is IPv4',
  ],
  [
    'pod prefix outside the network',
    doc((d) => (d.zones[1].subnets[0].podPrefix = '100.64.0.0/16')),
    'zones[1].subnets[0].podPrefix',
    '100.64.0.0/16 is outside the network 100.96.0.0/11',
  ],
  [
    'pod prefix containing the network',
    doc((d) => (d.zones[1].subnets[0].podPrefix = '100.64.0.0/10')),
    'zones[1].subnets[0].podPrefix',
    '100.64.0.0/10 is outside the network 100.96.0.0/11',
  ],
  [
    'pod prefix smaller than a block',
    doc((d) => (d.zones[1].subnets[0].podPrefix = '100.112.0.0/27')),
    'zones[1].subnets[0].podPrefix',
    '100.112.0.0/27 cannot hold one /26 block (blockSize is 26): use a pod prefix of length 26 or shorter',
  ],
  [
    'pod prefixes overlapping',
    doc((d) => (d.zones[0].subnets[1].podPrefix = '100.113.0.0/16')),
    'zones[1].subnets[0].podPrefix',
    '100.112.0.0/14 overlaps 100.113.0.0/16, the pod prefix of subnet subnet-b (zones[0].subnets[1].podPrefix)',
  ],
  // route tables
  [
    'route table a number',
    doc((d) => (d.zones[0].subnets[0].routeTable = 1)),
    'zones[0].subnets[0].routeTable',
    'expected route table id as a string, got number 1 (quote it to make it a string)',
  ],
  [
    'route table null',
    doc((d) => (d.zones[0].subnets[0].routeTable = null)),
    'zones[0].subnets[0].routeTable',
    'expected route table id as a string, got null (omit the key when there is none)',
  ],
  [
    'route table empty',
    doc((d) => (d.zones[0].subnets[0].routeTable = '')),
    'zones[0].subnets[0].routeTable',
    '"" is not a valid route table id: use 1 to 253 letters, digits, ".", "_" and "-", starting with a letter or digit',
  ],
  // space
  [
    'network too small to carve every subnet',
    doc((d) => {
      d.network = '100.96.0.0/15';
      d.subnetSize = 17;
      d.zones[1].subnets[0].podPrefix = '100.96.0.0/16';
      d.zones.push({ name: 'z3', subnets: [{ id: 'subnet-d', cidr: '198.18.3.0/24' }, { id: 'subnet-e', cidr: '198.18.4.0/24' }] });
    }),
    'zones[2].subnets[0]',
    'the network 100.96.0.0/15 is too small: it has room for 2 carved /17 pod prefixes beside the explicit ones, ' +
      'but 4 subnets need one; subnet subnet-d is the first that does not fit (1 more after it) ' +
      '(widen the network, raise subnetSize, or give subnets explicit podPrefix values)',
  ],
];

t.test('every rule has its own precise issue', async (t) => {
  for (const [name, text, path, message] of cases) {
    const errors = errorsOf(text);
    const first = errors[0];
    t.ok(first !== undefined, `${name}: reported`);
    if (first === undefined) continue;
    t.equal(first.path, path, `${name}: path`);
    if (typeof message === 'string') t.equal(first.message, message, `${name}: message`);
    else t.match(first.message, message, `${name}: message`);
    if (!/syntax/.test(first.message)) {
      t.equal(errors.length, 1, `${name}: one mistake, one issue`);
    }
  }
});
