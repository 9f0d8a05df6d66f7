// The example files installed next to the unit: systemd/trellisd.env (the
// environment file) and systemd/trellisd.yaml (the configuration file). Both
// must be accepted by trellisd's own configuration loader, name only keys and
// variables that exist, and keep the paths the unit makes writable.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type TrellisConfig } from '../../src/config/load.js';
import { CONFIG_KEYS, envName } from '../../src/config/schema.js';
import { ROOT } from '../../lab/trellis.js';

const ENV_FILE = join(ROOT, 'systemd', 'trellisd.env');
const YAML_FILE = join(ROOT, 'systemd', 'trellisd.yaml');
const envText = readFileSync(ENV_FILE, 'utf8');

/** `NAME=value` lines of an environment file; `commented` also takes `#NAME=value`. */
function assignments(text: string, commented: boolean): Array<[string, string]> {
  const pattern = commented ? /^#?([A-Z_][A-Z0-9_]*)=(.*)$/ : /^([A-Z_][A-Z0-9_]*)=(.*)$/;
  return text.split('\n').flatMap((line) => {
    const m = pattern.exec(line.trim());
    return m === null ? [] : [[m[1] as string, m[2] as string] as [string, string]];
  });
}

/** The value of a key path in a loaded configuration, e.g. "etcd.tls.ca". */
function valueAt(config: TrellisConfig, path: string): unknown {
  return path.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], config);
}

t.test('environment file: only real TRELLIS_* variables, all commented out', async (t) => {
  const known = new Set(CONFIG_KEYS.map((k) => envName(k.path)));
  const examples = assignments(envText, true);
  t.ok(examples.length >= 8, 'shows a good number of examples');
  for (const [name] of examples) t.ok(known.has(name), `${name} is a trellisd variable`);
  t.same(assignments(envText, false), [], 'installed unchanged, the file sets nothing');
  for (const name of ['TRELLIS_ETCD_ENDPOINTS', 'TRELLIS_ETCD_TLS_CA', 'TRELLIS_ETCD_PASSWORD', 'TRELLIS_LOG_LEVEL']) {
    t.ok(examples.some(([n]) => n === name), `shows ${name}`);
  }
  t.match(envText, /flag, environment variable,\s+(#\s+)?the YAML file[^,]*, the default/, 'explains the precedence');
});

t.test('configuration file: accepted as it is', async (t) => {
  const config = loadConfig({ file: YAML_FILE, env: {} });
  t.equal(config.hostIP, '198.18.0.10', 'hostIP from the file');
  t.equal(config.etcd.endpoints.length, 3, 'three etcd endpoints');
  t.ok(config.etcd.endpoints.every((e) => e.startsWith('https://')), 'etcd over TLS');
  t.equal(config.stateDir, '/var/lib/trellis', 'stateDir is the unit StateDirectory');
  t.match(config.ipam.socket, /^\/run\/trellis\//, 'ipam.socket lies in the unit RuntimeDirectory');
  t.equal(config.http.listen, '127.0.0.1:9653', 'HTTP endpoint on loopback');
});

t.test('environment file, every example enabled: accepted, and wins over the file', async (t) => {
  const env = Object.fromEntries(assignments(envText, true));
  const config = loadConfig({ file: YAML_FILE, env });
  const fromFile = loadConfig({ file: YAML_FILE, env: {} });
  t.not(config.log.level, fromFile.log.level, 'the example changes a value the file sets');
  // The same values given as flags (the highest precedence) give the same result.
  const set = CONFIG_KEYS.filter((k) => env[envName(k.path)] !== undefined);
  const asFlags = loadConfig({ file: YAML_FILE, env: {}, flags: new Map(set.map((k) => [k.path, env[envName(k.path)] as string])) });
  for (const key of set) t.same(valueAt(config, key.path), valueAt(asFlags, key.path), `${envName(key.path)} sets ${key.path}`);
});

t.test('example addresses: hosts in 198.18.0.0/15, or loopback', async (t) => {
  for (const file of [ENV_FILE, YAML_FILE, join(ROOT, 'systemd', 'trellisd.service')]) {
    const addresses = readFileSync(file, 'utf8').match(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g) ?? [];
    for (const a of addresses) t.ok(/^198\.1[89]\./.test(a) || a === '127.0.0.1', `${a} in ${file.slice(ROOT.length + 1)}`);
  }
});
