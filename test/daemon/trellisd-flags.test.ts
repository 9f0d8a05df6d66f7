// trellisd's flags, BUILT program (dist/daemon/trellisd.js): boolean settings
// as switches, --check-config output that reads back as the same
// configuration, unreadable TLS files refused, ETCDCTL_* fallbacks and their
// precedence.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { runCli } from '../../lab/trellis.js';

const ctl = (args: string[], env: Record<string, string> = {}) => runCli('src/cli/trellisctl', args, env);
const trellisd = (args: string[], env: Record<string, string> = {}) => runCli('daemon/trellisd', args, env);
const dir = mkdtempSync(join(tmpdir(), 'trellis-conventions-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
/** The minimum trellisd needs for --check-config. */
const node = ['--host-ip', '198.18.0.10', '--interface', 'eth0'];

t.test('boolean settings are switches in trellisd', async (t) => {
  const vpc = (args: string[]) => {
    const r = trellisd(['--check-config', ...node, ...args]);
    return r.code === 0 ? (parseYaml(r.stdout) as { vpc: { enabled: boolean }; routes: { enabled: boolean } }) : r;
  };
  t.match(vpc([]), { vpc: { enabled: false }, routes: { enabled: true } }, 'defaults');
  t.match(vpc(['--vpc-enabled']), { vpc: { enabled: true } });
  t.match(vpc(['--vpc-enabled', '--no-vpc-enabled']), { vpc: { enabled: false } }, 'the last one wins');
  t.match(vpc(['--no-routes-enabled']), { routes: { enabled: false } });
  t.match(vpc(['--vpc-enabled=true']), { vpc: { enabled: true } });
  t.match(vpc(['--vpc-enabled=false']), { vpc: { enabled: false } });
  t.match(vpc(['--vpc-enabled', '--host-ip', '198.18.0.11']), { vpc: { enabled: true }, hostIP: '198.18.0.11' }, 'a switch takes no value');
  const maybe = trellisd(['--check-config', ...node, '--vpc-enabled=maybe']);
  t.equal(maybe.code, 2);
  t.match(maybe.stderr, /^trellisd: invalid value "maybe" for "--vpc-enabled": expected true or false/);
  t.match(vpc(['--vpc-enabled', 'false']), { vpc: { enabled: false } }, 'the older "--flag true|false" still works');
  const yes = trellisd(['--check-config', ...node, '--vpc-enabled', 'yes']);
  t.equal(yes.code, 2);
  t.match(yes.stderr, /unexpected argument "yes" \(--vpc-enabled is a switch: write --vpc-enabled or --no-vpc-enabled, or --vpc-enabled=yes; run "trellisd --help" for usage\)/);
  t.equal(trellisd(['--check-config', ...node, '--no-host-ip']).code, 2, 'only booleans have a --no- form');
  t.match(trellisd(['--help']).stdout, /--vpc-enabled, --no-vpc-enabled  \(TRELLIS_VPC_ENABLED; default: false\)/);
});

t.test('--check-config prints a configuration that reads back as itself', async (t) => {
  const first = trellisd([
    '--check-config', ...node, '--hold-time', '9s', '--vpc-probe-interval', '500ms', '--ipam-block-grace', '2m',
    '--etcd-request-timeout', '1500ms', '--etcd-username', 'u', '--etcd-password', 'secret', '--vpc-enabled', '--node-name', 'n1',
    '--vpc-metadata-endpoint', 'http://127.0.0.1:1', // VPC mode reads the instance metadata: never the real address
  ]);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /\nholdTime: 9s\n/);
  t.match(first.stdout, /\n {2}probeInterval: 500ms\n/);
  t.match(first.stdout, /\n {2}blockGrace: 2m\n/);
  t.match(first.stdout, /\n {2}requestTimeout: 1500ms\n/);
  t.notMatch(first.stdout, /secret/, 'the password is masked');
  const again = trellisd(['--check-config', '--config', file('check.yaml', first.stdout)]);
  t.same(again, { code: 0, stdout: first.stdout, stderr: '' }, 'fed back through --config: identical output');
  const defaults = trellisd(['--check-config', ...node]);
  const back = trellisd(['--check-config', '-c', file('defaults.yaml', defaults.stdout)]);
  t.equal(back.stdout, defaults.stdout, 'the defaults read back too');
  t.match(defaults.stdout, /\nholdTime: 6s\n/);
});

t.test('--check-config fails on a TLS file that cannot be read', async (t) => {
  const ca = file('ca.pem', 'not checked here\n');
  const tls = ['--check-config', ...node, '--etcd-endpoints', 'https://127.0.0.1:2379'];
  t.equal(trellisd([...tls, '--etcd-tls-ca', ca]).code, 0, 'a readable file passes');
  const gone = join(dir, 'gone.pem');
  const r = trellisd([...tls, '--etcd-tls-ca', ca, '--etcd-tls-cert', gone, '--etcd-tls-key', gone]);
  t.equal(r.code, 2);
  t.equal(r.stdout, '');
  t.match(r.stderr, `etcd.tls.cert: cannot read ${gone}: no such file`);
  t.match(r.stderr, `etcd.tls.key: cannot read ${gone}: no such file`);
  const folder = join(dir, 'a-dir');
  mkdirSync(folder);
  const d = trellisd([...tls, '--etcd-tls-ca', folder]);
  t.equal(d.code, 2);
  t.match(d.stderr, `etcd.tls.ca: cannot read ${folder}: it is a directory, not a file`);
});

t.test('ETCDCTL_* when TRELLIS_* is unset: flag > TRELLIS_ > ETCDCTL_ > file > default', async (t) => {
  const endpoints = (args: string[], env: Record<string, string>) => {
    const r = trellisd(['--check-config', ...node, ...args], env);
    t.equal(r.code, 0, r.stderr);
    return (parseYaml(r.stdout) as { etcd: { endpoints: string[] } }).etcd.endpoints;
  };
  const cfg = file('ep.yaml', 'etcd:\n  endpoints: [http://127.0.0.1:1001]\n');
  t.same(endpoints([], {}), ['http://127.0.0.1:2379'], 'default');
  t.same(endpoints(['-c', cfg], {}), ['http://127.0.0.1:1001'], 'file');
  t.same(endpoints(['-c', cfg], { ETCDCTL_ENDPOINTS: 'http://127.0.0.1:1002' }), ['http://127.0.0.1:1002'], 'ETCDCTL_ over file');
  t.same(endpoints(['-c', cfg], { ETCDCTL_ENDPOINTS: 'http://127.0.0.1:1002', TRELLIS_ETCD_ENDPOINTS: 'http://127.0.0.1:1003' }), ['http://127.0.0.1:1003'], 'TRELLIS_ over ETCDCTL_');
  t.same(endpoints(['-c', cfg, '--etcd-endpoints', 'http://127.0.0.1:1004'], { ETCDCTL_ENDPOINTS: 'http://127.0.0.1:1002', TRELLIS_ETCD_ENDPOINTS: 'http://127.0.0.1:1003' }), ['http://127.0.0.1:1004'], 'flag over all');
  const ca = file('ca2.pem', 'x\n');
  const r = trellisd(['--check-config', ...node], { ETCDCTL_ENDPOINTS: 'https://127.0.0.1:2379', ETCDCTL_CACERT: ca, ETCDCTL_CERT: ca, ETCDCTL_KEY: ca });
  t.equal(r.code, 0, r.stderr);
  t.match(parseYaml(r.stdout), { etcd: { tls: { ca, cert: ca, key: ca } } }, 'TLS files from ETCDCTL_CACERT/CERT/KEY');
  t.match(trellisd(['--help']).stdout, /TRELLIS_ETCD_TLS_CA, else ETCDCTL_CACERT/);
  t.match(ctl(['nodes', '--help']).stdout, /TRELLIS_ETCD_ENDPOINTS, else ETCDCTL_ENDPOINTS/);
});

