// trellisctl in-process: main(argv, io) with captured output.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/command.js';
import { formatTable } from '../../src/cli/output.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/topology/${name}`, import.meta.url));
const example = fileURLToPath(new URL('../../examples/topology.yaml', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], stdin = ''): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    readFile: (path) => (path === '-' ? Promise.resolve(stdin) : readFile(path, 'utf8')),
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

t.test('validate: a valid file', async (t) => {
  const r = await run(['topology', 'validate', example]);
  t.equal(r.code, 0);
  t.equal(r.stdout, `${example}: ok (3 zones, 6 subnets, network 100.96.0.0/11)\n`);
  t.equal(r.stderr, '');
  const one = await run(['topology', 'validate', fixture('valid.json')]);
  t.equal(one.stdout, `${fixture('valid.json')}: ok (1 zone, 1 subnet, network 100.96.0.0/11)\n`, 'JSON file, singular words');
});

t.test('validate: invalid files print FILE: PATH: message per problem and exit 1', async (t) => {
  const many = await run(['topology', 'validate', fixture('many-errors.yaml')]);
  t.equal(many.code, 1);
  t.equal(many.stdout, '');
  const f = fixture('many-errors.yaml');
  t.same(many.stderr.trimEnd().split('\n'), [
    `${f}: subnetSize: /10 is out of range: it must be 11 or more (a carved pod prefix cannot be larger than the network 100.96.0.0/11)`,
    `${f}: zones[0].subnets[0].podPrefix: 100.64.0.0/16 is outside the network 100.96.0.0/11`,
    `${f}: zones[0].subnets[1].routetable: unknown key "routetable" (did you mean "routeTable"?)`,
    `${f}: zones[0].subnets[1].id: duplicate subnet id "subnet-a" (first used by zones[0].subnets[0])`,
    `${f}: zones[0].subnets[1].cidr: host CIDR 198.18.0.128/25 overlaps 198.18.0.0/24, the host CIDR of subnet subnet-a (zones[0].subnets[0].cidr)`,
    `${f}: zones[1].subnets: must list at least one subnet`,
  ]);

  const cases: Array<[string, RegExp]> = [
    ['syntax-error.yaml', /^\S+syntax-error\.yaml: YAML syntax error at line 5, column 1: .+\n$/],
    ['not-a-mapping.yaml', /^\S+not-a-mapping\.yaml: the topology must be a mapping with "network" and "zones", got a list\n$/],
    [
      'too-small.yaml',
      /^\S+too-small\.yaml: zones\[1\]\.subnets\[1\]: the network 100\.96\.0\.0\/14 is too small: it has room for 4 carved \/16 pod prefixes beside the explicit ones, but 5 subnets need one; subnet subnet-e is the first that does not fit/,
    ],
    // Exactly one line each: the file, the field path, and the rule broken.
    [
      'block-larger-than-pod-prefix.yaml',
      /^\S+block-larger-than-pod-prefix\.yaml: zones\[1\]\.subnets\[0\]\.podPrefix: 100\.112\.0\.0\/25 cannot hold one \/24 block \(blockSize is 24\): use a pod prefix of length 24 or shorter\n$/,
    ],
    ['duplicate-zone.yaml', /^\S+duplicate-zone\.yaml: zones\[1\]\.name: duplicate zone name "us-east-1a" \(first used by zones\[0\]\)\n$/],
  ];
  for (const [name, stderr] of cases) {
    const r = await run(['topology', 'validate', fixture(name)]);
    t.equal(r.code, 1, `${name}: exit 1`);
    t.equal(r.stdout, '', `${name}: nothing on stdout`);
    t.match(r.stderr, stderr, `${name}: stderr`);
    t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack trace`);
  }
});

t.test('an unreadable file exits 1 with a clear message', async (t) => {
  const missing = fixture('no-such-file.yaml');
  const r = await run(['topology', 'validate', missing]);
  t.same(r, { code: 1, stdout: '', stderr: `${missing}: cannot read the topology file: no such file\n` });
  const dir = fixture('');
  const d = await run(['topology', 'render', dir]);
  t.same(d, { code: 1, stdout: '', stderr: `${dir}: cannot read the topology file: it is a directory\n` });
});

t.test('"-" reads standard input', async (t) => {
  const text = await readFile(fixture('valid.yaml'), 'utf8');
  const r = await run(['topology', 'validate', '-'], text);
  t.same(r, { code: 0, stdout: '<stdin>: ok (2 zones, 3 subnets, network 100.96.0.0/11)\n', stderr: '' });
  const bad = await run(['topology', 'validate', '-'], 'network: 100.96.0.0/11\nzones: []\n');
  t.same(bad, { code: 1, stdout: '', stderr: '<stdin>: zones: must list at least one zone\n' });
});

t.test('render -o json prints the resolved topology', async (t) => {
  for (const argv of [
    ['topology', 'render', fixture('valid.yaml'), '-o', 'json'],
    ['topology', 'render', '--output=json', fixture('valid.yaml')],
    ['topology', 'render', '-ojson', fixture('valid.yaml')],
  ]) {
    const r = await run(argv);
    t.equal(r.code, 0, argv.join(' '));
    t.equal(r.stderr, '');
    t.same(JSON.parse(r.stdout), {
      network: '100.96.0.0/11',
      blockSize: 26,
      nodeHomeSize: 24,
      subnetSize: 16,
      zones: [
        {
          name: 'z1',
          subnets: [
            { id: 'subnet-a', cidr: '198.18.0.0/24', podPrefix: '100.96.0.0/16', podPrefixExplicit: false, routeTable: 'rtb-1' },
            { id: 'subnet-b', cidr: '198.18.1.0/24', podPrefix: '100.97.0.0/16', podPrefixExplicit: false },
          ],
        },
        {
          name: 'z2',
          subnets: [
            { id: 'subnet-c', cidr: '198.18.2.0/24', podPrefix: '100.112.0.0/14', podPrefixExplicit: true, routeTable: 'rtb-2' },
          ],
        },
      ],
    });
  }
  const invalid = await run(['topology', 'render', fixture('many-errors.yaml'), '-o', 'json']);
  t.equal(invalid.code, 1, 'an invalid file is not rendered');
  t.equal(invalid.stdout, '');
});

t.test('render prints a table by default', async (t) => {
  const r = await run(['topology', 'render', example]);
  t.equal(r.code, 0);
  t.equal(
    r.stdout,
    [
      'network 100.96.0.0/11  blockSize /26  nodeHomeSize /24  subnetSize /16',
      '',
      'ZONE        SUBNET      HOST CIDR      POD PREFIX               ROUTE TABLE  /26 BLOCKS',
      'us-east-1a  subnet-0a1  198.18.0.0/24  100.96.0.0/16 (carved)   rtb-0a             1024',
      'us-east-1a  subnet-0a2  198.18.1.0/24  100.97.0.0/16 (carved)   rtb-0a             1024',
      'us-east-1b  subnet-0b1  198.18.2.0/24  100.98.0.0/15            rtb-0b             2048',
      'us-east-1b  subnet-0b2  198.18.3.0/24  100.100.0.0/16 (carved)  rtb-0b             1024',
      'us-east-1c  subnet-0c1  198.18.4.0/24  100.101.0.0/16 (carved)  rtb-0c             1024',
      'us-east-1c  subnet-0c2  198.18.5.0/24  100.102.0.0/16 (carved)  rtb-0c             1024',
      '',
      "6 subnets in 3 zones (5 carved, 1 explicit); 7168 of the network's 32768 /26 blocks are in subnet pod prefixes",
      '',
    ].join('\n'),
  );
  const explicitTable = await run(['topology', 'render', fixture('valid.json'), '-o', 'table']);
  t.match(explicitTable.stdout, /\nz1 +subnet-a +198\.18\.0\.0\/24 +100\.96\.0\.0\/14 +rtb-1 +4096\n/, '-o table');
  t.match(explicitTable.stdout, /1 subnet in 1 zone \(0 carved, 1 explicit\)/);
  const noTable = await run(['topology', 'render', fixture('valid.yaml')]);
  t.match(noTable.stdout, /\nz1 +subnet-b +198\.18\.1\.0\/24 +100\.97\.0\.0\/16 \(carved\) +- +1024\n/, 'no route table: "-"');
});

t.test('usage errors exit 2 with the usage on stderr', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /^trellisctl: missing command after "trellisctl"\nUsage: trellisctl COMMAND/],
    [['bogus'], /^trellisctl: unknown command "bogus" for "trellisctl"\nUsage: trellisctl COMMAND[^]*topology/],
    [['--verbose'], /^trellisctl: unknown option "--verbose"\nUsage: trellisctl COMMAND/],
    [['topology'], /^trellisctl: missing command after "trellisctl topology"\nUsage: trellisctl topology COMMAND[^]*validate[^]*render/],
    [['topology', 'frobnicate'], /^trellisctl: unknown command "frobnicate" for "trellisctl topology"\n/],
    [['topology', 'validate'], /^trellisctl: missing argument: expected FILE\nUsage: trellisctl topology validate FILE\n/],
    [['topology', 'validate', 'a', 'b', 'c'], /^trellisctl: unexpected arguments "b" "c"\n/],
    [['topology', 'render', 'a', 'b'], /^trellisctl: unexpected argument "b"\n/],
    [['topology', 'validate', '-o', 'json', 'f'], /^trellisctl: unknown option "-o"\nUsage: trellisctl topology validate FILE/],
    [['topology', 'render', 'f', '--frob'], /^trellisctl: unknown option "--frob"\nUsage: trellisctl topology render \[options\] FILE[^]*-o, --output FORMAT/],
    [['topology', 'render', 'f', '-o', 'xml'], /^trellisctl: invalid value "xml" for -o\/--output: expected table, json or yaml\n/],
    [['nodes', '-o', 'tabel'], /^trellisctl: invalid value "tabel" for -o\/--output: expected table, wide, json or yaml\n/],
    [['block'], /^trellisctl: unknown command "block" for "trellisctl" \(did you mean "blocks"\?\)\nUsage: trellisctl COMMAND/],
    [['--versoin'], /^trellisctl: unknown option "--versoin" \(did you mean "--version"\?\)\n/],
    [['topology', 'rendr'], /^trellisctl: unknown command "rendr" for "trellisctl topology" \(did you mean "render"\?\)\n/],
    [['nodes', '--etcd-endpoint', 'x'], /^trellisctl: unknown option "--etcd-endpoint" \(did you mean "--etcd-endpoints"\?\)\nUsage: trellisctl nodes/],
    [['help', 'nods'], /^trellisctl: unknown command "nods" for "trellisctl" \(did you mean "nodes"\?\)\n/],
    [['help', 'nodes', 'x'], /^trellisctl: "trellisctl nodes" has no subcommand "x"\n/],
    [['topology', 'render', 'f', '-o'], /^trellisctl: option "-o, --output <value>" argument missing\n/],
  ];
  for (const [argv, stderr] of cases) {
    const r = await run(argv);
    t.equal(r.code, 2, `${argv.join(' ')}: exit 2`);
    t.equal(r.stdout, '', `${argv.join(' ')}: nothing on stdout`);
    t.match(r.stderr, stderr, `${argv.join(' ')}: stderr`);
    t.match(r.stderr, /Run "trellisctl[a-z ]*--help" for more\.\n$/, `${argv.join(' ')}: points to --help`);
  }
});

t.test('--help and -h print help with an example on stdout and exit 0', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--help'], /^Usage: trellisctl COMMAND \[ARGS\.\.\.\]\n[^]*Commands:\n  topology  validate and render topology files\n[^]*Examples:\n  trellisctl topology validate/],
    [['-h'], /^Usage: trellisctl COMMAND/],
    [['topology', '--help'], /^Usage: trellisctl topology COMMAND[^]*validate  check a topology file[^]*render    print the resolved[^]*Examples:/],
    [['topology', 'validate', '-h'], /^Usage: trellisctl topology validate FILE\n[^]*-h, --help  show this help[^]*Examples:\n  trellisctl topology validate examples\/topology\.yaml\n$/],
    [['topology', 'render', '--help'], /^Usage: trellisctl topology render \[options\] FILE\n[^]*-o, --output FORMAT  output format: table, json or yaml \(default: table\)[^]*Examples:/],
    [['topology', 'render', 'f', '--bogus', '--help'], /^Usage: trellisctl topology render/],
  ];
  for (const [argv, stdout] of cases) {
    const r = await run(argv);
    t.equal(r.code, 0, `${argv.join(' ')}: exit 0`);
    t.equal(r.stderr, '', `${argv.join(' ')}: nothing on stderr`);
    t.match(r.stdout, stdout, `${argv.join(' ')}: help`);
  }
  const afterDashes = await run(['topology', 'validate', '--', '--help']);
  t.equal(afterDashes.code, 1, 'after "--", --help is a file name');
  t.match(afterDashes.stderr, /^--help: cannot read the topology file: no such file\n$/);
});

t.test('an unexpected failure inside a command is one line, exit 1', async (t) => {
  let stderr = '';
  const io: CliIO = {
    stdout: () => {
      throw new Error('stdout is closed');
    },
    stderr: (s) => void (stderr += s),
    readFile: () => readFile(example, 'utf8'),
  };
  t.equal(await main(['topology', 'validate', 'x'], io), 1);
  t.equal(stderr, 'trellisctl: stdout is closed\n');
});

t.test('formatTable aligns columns without trailing blanks', async (t) => {
  t.same(formatTable(['A', 'NUMBER', 'C'], [['long-cell', '7', ''], ['x', '12345', 'z']], { right: [1] }), [
    'A          NUMBER  C',
    'long-cell       7',
    'x           12345  z',
  ]);
  t.same(formatTable(undefined, []), []);
});

t.test('read failures other than a missing file', async (t) => {
  const failing = (err: Error): CliIO => ({
    stdout: () => undefined,
    stderr: (s) => void (stderrs.push(s)),
    readFile: () => Promise.reject(err),
  });
  const stderrs: string[] = [];
  const denied = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
  t.equal(await main(['topology', 'validate', 'secret.yaml'], failing(denied)), 1);
  t.equal(await main(['topology', 'validate', 'odd.yaml'], failing(new Error('stream closed'))), 1);
  t.same(stderrs, [
    'secret.yaml: cannot read the topology file: permission denied\n',
    'odd.yaml: cannot read the topology file: stream closed\n',
  ]);
});
