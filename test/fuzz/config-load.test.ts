// Fuzzing the config loader: random files, near-valid mutations of a valid
// file, and random flags and environment never crash it. It returns a
// configuration or throws one TrellisError(E_CONFIG) whose every problem is a
// non-empty line naming where it comes from (a key path, the file, a flag or
// an environment variable); a field set to a wrong value is named.
import t from 'tap';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { CONFIG_KEYS, envName, flagName } from '../../src/config/schema.js';
import { ErrorCode, TrellisError } from '../../src/errors.js';
import { RUNS, anyText, mutate, mutationArb, spellings } from './fuzz-inputs.js';

const dir = mkdtempSync(join(process.platform === 'linux' ? '/dev/shm' : tmpdir(), 'trellis-fuzz-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'trellisd.yaml');

const valid = {
  nodeName: 'node-1',
  hostIP: '198.18.1.10',
  subnet: 's1',
  holdTime: '6s',
  stateDir: '/var/lib/trellis',
  etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: '/trellis', requestTimeout: '5s' },
  routes: { enabled: true, table: 254, protocol: 84, ownBlocks: 'unreachable' },
  ipam: { socket: '/run/trellis/trellisd.sock' },
  http: { listen: '127.0.0.1:9653' },
  cni: { install: false, binDir: '/opt/cni/bin', confDir: '/etc/cni/net.d', mtu: 1500 },
  vpc: { enabled: false, region: 'us-east-1' },
  log: { level: 'info' },
};
const fields = [
  ...CONFIG_KEYS.map((k) => k.path),
  'etcd',
  'routes',
  'cni',
  'vpc',
  'etcd.tls',
];

const groups = new Set(CONFIG_KEYS.flatMap((k) => k.path.split('.').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('.'))));
const names = [...CONFIG_KEYS.flatMap((k) => [k.path, envName(k.path), `--${flagName(k.path)}`, ...(k.fallbackEnv === undefined ? [] : [k.fallbackEnv])]), ...groups, file];

/** Load and check the outcome's shape; returns the problems (empty when the configuration loaded). */
function load(options: Parameters<typeof loadConfig>[0]): string[] {
  try {
    loadConfig(options);
    return [];
  } catch (err) {
    if (!(err instanceof TrellisError) || err.code !== ErrorCode.Config) throw new Error(`not an E_CONFIG error: ${String(err)}`, { cause: err });
    const problems = (err.details?.problems ?? []) as string[];
    if (problems.length === 0) throw new Error(`E_CONFIG without problems: ${err.message}`);
    for (const p of problems) {
      if (typeof p !== 'string' || p.trim() === '') throw new Error(`empty problem in ${err.message}`);
      if (!names.some((n) => p.includes(n))) throw new Error(`problem names no key, file, flag or variable: ${p}`);
    }
    return problems;
  }
}

t.test('the valid file loads', async (t) => {
  writeFileSync(file, JSON.stringify(valid));
  t.same(load({ file, env: {} }), []);
});

t.test('random file text never crashes the loader', async (t) => {
  fc.assert(
    fc.property(anyText, (text) => {
      writeFileSync(file, text);
      load({ file, env: {} });
    }),
    { numRuns: Math.ceil(RUNS / 2) },
  );
  t.pass(`${Math.ceil(RUNS / 2)} inputs`);
});

t.test('near-valid files never crash the loader, a wrong value is named', async (t) => {
  fc.assert(
    fc.property(mutationArb(fields), fc.boolean(), (m, asYaml) => {
      let text = mutate(valid, m);
      // The same document as block YAML, where the JSON still parses.
      if (asYaml) text = text.replace(/^\{|\}$/g, '').replace(/,"/g, '\n"');
      writeFileSync(file, text);
      const problems = load({ file, env: {} });
      if (m.kind === 'set' && !asYaml && problems.length > 0 && !problems.some((p) => spellings(m.field).some((s) => p.includes(s)))) {
        throw new Error(`${m.field} = ${JSON.stringify(m.value)?.slice(0, 60)}: no problem names it: ${problems.join(' | ')}`);
      }
    }),
    { numRuns: Math.ceil(RUNS / 2) },
  );
  t.pass(`${Math.ceil(RUNS / 2)} inputs`);
});

t.test('regression: a self-referencing YAML alias is a config problem, not a crash', async (t) => {
  writeFileSync(file, 'nodeName: &a [*a]\n');
  t.match(load({ file, env: {} }), [/nodeName: expected a string, got a list/]);
});

t.test('regression: an alias bomb is a config problem, not a crash', async (t) => {
  const levels = ['a: &a [x,x,x,x,x,x,x,x,x,x]'];
  for (const n of ['b', 'c', 'd']) levels.push(`${n}: &${n} [${Array(12).fill(`*${String.fromCharCode(n.charCodeAt(0) - 1)}`).join(',')}]`);
  writeFileSync(file, `${levels.join('\n')}\n`);
  t.match(load({ file, env: {} }), [/not usable YAML: .*alias/]);
});

t.test('regression: a string key given a mapping is refused, not stored as the error text', async (t) => {
  writeFileSync(file, JSON.stringify({ ...valid, stateDir: { a: 1 } }));
  t.match(load({ file, env: {} }), [/stateDir: expected a string, got \{"a":1\}/]);
  writeFileSync(file, JSON.stringify({ ...valid, etcd: { ...valid.etcd, prefix: ['/x'] } }));
  t.match(load({ file, env: {} }), [/etcd.prefix: expected a string/]);
});
