// The TypeScript in src/gen/ must be exactly what protoc-gen-es makes of
// proto/ today: regenerate into a temporary directory and compare file by file.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ROOT } from '../../lab/trellis.js';
import { which } from '../../lab/pids.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

const reason = which('protoc') === undefined ? 'protoc is not installed (Debian protobuf-compiler)' : false;

t.test('src/gen is up to date with proto/', { skip: reason }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'trellis-gen-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const protos = files(join(ROOT, 'proto')).filter((f) => f.endsWith('.proto')).sort();
  t.ok(protos.length > 0, 'there are .proto files');
  execFileSync(
    'protoc',
    [
      '-I', join(ROOT, 'proto'),
      '-I', '/usr/include',
      `--plugin=protoc-gen-es=${join(ROOT, 'node_modules/.bin/protoc-gen-es')}`,
      `--es_out=${out}`,
      '--es_opt=target=ts,import_extension=js',
      ...protos,
    ],
    { cwd: ROOT },
  );
  const fresh = files(out).map((f) => relative(out, f)).sort();
  const committed = files(join(ROOT, 'src/gen')).map((f) => relative(join(ROOT, 'src/gen'), f)).sort();
  t.same(committed, fresh, 'same set of generated files (run "npm run proto")');
  for (const f of fresh) {
    const same = readFileSync(join(out, f), 'utf8') === readFileSync(join(ROOT, 'src/gen', f), 'utf8');
    t.ok(same, `${f} matches the schema (run "npm run proto" and commit the result)`);
  }
});
