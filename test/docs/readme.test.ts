// README.md is the front door: what Trellis is, a two-command quick start,
// the map of the manual and the set-up. It stays short, and every page of the
// manual is reachable from it.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../lab/trellis.js';
import { relativeLinks, type Page } from './manual.js';

const readme: Page = { file: 'README.md', text: readFileSync(join(ROOT, 'README.md'), 'utf8') };

t.test('quick start: exactly two commands, the demo and the tests', async (t) => {
  t.match(readme.text, /## Quick start[^#]*```sh\nnpm run demo[^\n]*\nnpm test[^\n]*\n```/);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
  for (const script of ['demo', 'test', 'bench', 'docs', 'build']) t.ok(pkg.scripts[script], `npm run ${script} exists`);
  t.equal(pkg.bin.trellisctl, 'dist/src/cli/trellisctl.js', 'npx trellisctl runs the built CLI');
  t.ok(existsSync(join(ROOT, 'examples/demo/run.sh')), 'the demo script exists');
});

t.test('README stays a front door', async (t) => {
  const lines = readme.text.split('\n').length;
  t.ok(lines <= 250, `README.md has ${lines} lines (at most 250; the manual lives in docs/)`);
  for (const section of ['## Quick start', '## The manual', '## Setting up a cluster']) t.ok(readme.text.includes(`\n${section}\n`), `has "${section}"`);
  // Install steps come before the commands that need them: the demo (which installs and builds) before npx trellisctl.
  t.ok(readme.text.indexOf('npm run demo') < readme.text.indexOf('npx trellisctl'), 'npm run demo comes before npx trellisctl');
});

t.test('every page of the manual is linked from the README', async (t) => {
  const linked = new Set(relativeLinks(readme).map((l) => l.target));
  const pages = readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md'));
  t.ok(pages.length >= 10, 'docs/ holds the manual');
  for (const f of pages) t.ok(linked.has(`docs/${f}`), `README links docs/${f}`);
});

t.test('npx trellisctl runs the built CLI in the checkout, as the README says', async (t) => {
  // --no-install and offline: the project's own bin, never a package from a registry.
  const r = spawnSync('npx', ['--no-install', 'trellisctl', '--help'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false' },
    timeout: 60_000,
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^Usage: trellisctl COMMAND/);
  t.match(r.stdout, /\n {2}vpc {2}/, 'lists the commands');
});
