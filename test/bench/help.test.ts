// Every benchmark answers --help (and -h) with its own opening comment and
// exits 0 before it starts anything: no etcd, no namespace, no child left.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bin } from '../../lab/trellis.js';
import { headerComment } from '../../bench/lib/help.js';

const ROOT = join(import.meta.dirname, '..', '..');
const benches = readdirSync(join(ROOT, 'bench')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();

t.test('headerComment keeps the leading // block only', async (t) => {
  t.equal(headerComment('// one\n//   two\n//\n// three\nimport x;\n// not this\n'), 'one\n  two\n\nthree\n');
  t.equal(headerComment('import x;\n// late\n'), '\n', 'no header: an empty line');
});

for (const name of benches) {
  t.test(`bench/${name} --help`, async (t) => {
    const header = headerComment(readFileSync(join(ROOT, 'bench', `${name}.ts`), 'utf8'));
    t.ok(header.length > 40, 'the source opens with a comment that says what it measures');
    // -h is the same switch: checked on one benchmark, to keep this file short.
    for (const flag of name === 'cidr' ? ['--help', '-h'] : ['--help']) {
      const r = spawnSync(process.execPath, [bin(`bench/${name}`), flag], { encoding: 'utf8', timeout: 60_000 });
      t.equal(r.status, 0, `${flag} exits 0 (${r.stderr.slice(0, 300)})`);
      t.equal(r.stdout, header, `${flag} prints the header of bench/${name}.ts`);
    }
  });
}
