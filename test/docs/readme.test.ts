// The README is part of the product: its configuration reference must match
// the schema, and the examples and commands it shows must exist.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { withConfigTable } from '../../src/config/doc.js';
import { CONFIG_KEYS } from '../../src/config/schema.js';
import { ROOT } from '../../lab/trellis.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

t.test('configuration reference is generated from the schema', async (t) => {
  t.equal(readme, withConfigTable(readme), 'README.md is current (run "npm run docs")');
  for (const key of CONFIG_KEYS) t.match(readme, `| \`${key.path}\` |`, `documents ${key.path}`);
});

t.test('quick start and referenced files', async (t) => {
  t.match(readme, /## Quick start[^#]*```sh\nnpm run demo[^\n]*\nnpm test[^\n]*\n```/, 'quick start: exactly two commands, the demo and the tests');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.ok(pkg.scripts.test, 'npm test exists');
  t.ok(pkg.scripts.demo, 'npm run demo exists');
  t.ok(pkg.scripts.bench, 'npm run bench exists');
  for (const file of ['examples/topology.yaml', 'examples/10-trellis.conflist', 'proto/trellis/v1/records.proto', '.ci/run', '.ci/install-packages', 'systemd/trellisd.service']) {
    t.ok(existsSync(join(ROOT, file)), `${file} exists`);
  }
});
