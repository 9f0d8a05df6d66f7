// docs/configuration.md holds the configuration reference generated from the
// schema (src/config/doc.ts, `npm run docs`): it must be current and name
// every key.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BEGIN, CONFIG_DOC, END, withConfigTable } from '../../src/config/doc.js';
import { CONFIG_KEYS, envName, flagName } from '../../src/config/schema.js';
import { ROOT } from '../../lab/trellis.js';

const page = readFileSync(join(ROOT, CONFIG_DOC), 'utf8');

t.test('docs/configuration.md is generated from the schema', async (t) => {
  t.equal(CONFIG_DOC, 'docs/configuration.md');
  t.equal(page, withConfigTable(page), `${CONFIG_DOC} is current (run "npm run docs")`);
  for (const key of CONFIG_KEYS) {
    t.match(page, `| \`${key.path}\` | \`--${flagName(key.path)}\`<br>\`${envName(key.path)}\` |`, `documents ${key.path}`);
  }
});

t.test('the reference is generated in one place only', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  t.notOk(readme.includes(BEGIN) || readme.includes(END), 'README.md holds no copy of the generated table');
  t.throws(() => withConfigTable('# no markers here\n'), /lacks the markers/);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.match(pkg.scripts.docs, `--write ${CONFIG_DOC}`, 'npm run docs writes docs/configuration.md');
});
