// The dispatcher's contract for any command tree, shown on a synthetic one:
// how a future command file (nodes, blocks, vpc plan…) will behave.
import t from 'tap';
import { dispatch, type CliIO, type CommandGroup, type Invocation, type LeafCommand } from '../../src/cli/command.js';

const calls: Invocation[] = [];

const list: LeafCommand = {
  kind: 'command',
  name: 'list',
  summary: 'list things',
  args: '',
  positionals: { min: 0, max: 0 },
  options: {
    all: { type: 'boolean', doc: 'include stopped things' },
    subnet: { type: 'string', valueName: 'ID', doc: 'only this subnet' },
  },
  description: 'Lists things.',
  examples: [],
  async run(inv) {
    calls.push(inv);
    return 0;
  },
};

const crash: LeafCommand = {
  kind: 'command',
  name: 'crash',
  summary: 'fail',
  args: '',
  positionals: { min: 0, max: 0 },
  options: {},
  description: 'Fails.',
  examples: ['tool things crash'],
  async run() {
    throw new Error('boom', { cause: new Error('underneath') });
  },
};

const root: CommandGroup = {
  kind: 'group',
  name: 'tool',
  summary: '',
  description: 'A tool.',
  commands: [{ kind: 'group', name: 'things', summary: 'things', description: 'Things.', commands: [list, crash], examples: [] }],
  examples: [],
};

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    readFile: () => Promise.reject(new Error('unused')),
  };
  return { code: await dispatch(root, argv, io), stdout, stderr };
}

t.test('nested groups route to the leaf with parsed options', async (t) => {
  calls.length = 0;
  t.equal((await run(['things', 'list'])).code, 0);
  t.equal((await run(['things', 'list', '--all', '--subnet', 'subnet-a'])).code, 0);
  t.same(
    calls.map((c) => ({ path: c.path, positionals: c.positionals, options: c.options })),
    [
      { path: ['tool', 'things', 'list'], positionals: [], options: { all: undefined, subnet: undefined } },
      { path: ['tool', 'things', 'list'], positionals: [], options: { all: true, subnet: 'subnet-a' } },
    ],
  );
});

t.test('help of a leaf without arguments or short options', async (t) => {
  const r = await run(['things', 'list', '--help']);
  t.equal(r.code, 0);
  t.equal(
    r.stdout,
    'Usage: tool things list [options]\n\nLists things.\n\nOptions:\n' +
      '      --all        include stopped things\n' +
      '      --subnet ID  only this subnet\n' +
      '  -h, --help       show this help\n',
    'no Examples section when there are none',
  );
  const crashHelp = await run(['things', 'crash', '-h']);
  t.match(crashHelp.stdout, /^Usage: tool things crash\n/, 'no [options] when there are none');
});

t.test('usage errors name the long option when there is no short one', async (t) => {
  const r = await run(['things', 'list', 'extra']);
  t.equal(r.code, 2);
  t.match(r.stderr, /^tool: unexpected argument "extra"\nUsage: tool things list \[options\]\n/);
  const v = await run(['things', 'list', '--all=yes']);
  t.equal(v.code, 2);
  t.match(v.stderr, /^tool: option "--all" does not take an argument\n/);
});

t.test('a command that throws exits 1 with one line, cause included', async (t) => {
  const r = await run(['things', 'crash']);
  t.same(r, { code: 1, stdout: '', stderr: 'tool: boom: underneath\n' });
});
