// The systemd unit of trellisd (systemd/trellisd.service).
//
// * systemd itself must accept every line: `systemd-analyze verify` only warns
//   about an unknown key or a bad value and still exits 0, so any diagnostic
//   that names the unit fails the test. The unit is verified unchanged, in a
//   scratch root (`--root`) that holds the host's system units and a stub
//   executable at the ExecStart path.
// * The hardening is pinned line by line: systemd silently accepts some
//   mistakes (an unknown capability name, a misspelt target).
// * The unit's paths agree with trellisd's configuration defaults.
// * `systemd-analyze security --offline` rates the unit's exposure.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CONFIG_KEYS } from '../../src/config/schema.js';
import { ownedTempDir, type Teardown } from '../../lab/cleanup.js';
import { ROOT } from '../../lab/trellis.js';

const UNIT_NAME = 'trellisd.service';
const UNIT_TEXT = readFileSync(join(ROOT, 'systemd', UNIT_NAME), 'utf8');

/** Section → key → values in file order (a key may repeat). */
type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    if (line.endsWith('\\')) throw new Error(`line ${i + 1}: continuation lines are not used in this unit`);
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header !== null) {
      section = new Map();
      unit.set(header[1] as string, section);
      return;
    }
    const eq = line.indexOf('=');
    if (section === undefined || eq <= 0) throw new Error(`line ${i + 1}: not a key=value line in a section: ${raw}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  });
  return unit;
}

const unit = parseUnit(UNIT_TEXT);

/** All values of a key (empty when absent). */
function values(section: string, key: string): string[] {
  return unit.get(section)?.get(key) ?? [];
}

/** The single value of a key; undefined when absent or repeated. */
function value(section: string, key: string): string | undefined {
  const all = values(section, key);
  return all.length === 1 ? all[0] : undefined;
}

/** Space-separated words of all values of a key. */
function words(section: string, key: string): string[] {
  return values(section, key).flatMap((v) => v.split(/\s+/).filter((w) => w !== ''));
}

function configDefault(path: string): string {
  const key = CONFIG_KEYS.find((k) => k.path === path);
  if (key === undefined || typeof key.default !== 'string') throw new Error(`no string default for ${path}`);
  return key.default;
}

const execStart = value('Service', 'ExecStart') ?? '';
const binary = execStart.split(/\s+/)[0] ?? '';

t.test('the unit is parsed into its three sections', async (t) => {
  t.same([...unit.keys()], ['Unit', 'Service', 'Install'], 'sections [Unit], [Service], [Install]');
  t.equal(value('Install', 'WantedBy'), 'multi-user.target', 'enabled for the multi-user target');
});

t.test('start, restart and stop', async (t) => {
  t.equal(execStart, '/usr/local/bin/trellisd --config /etc/trellis/trellisd.yaml', 'runs the installed trellisd on the documented file');
  t.equal(value('Service', 'EnvironmentFile'), '-/etc/trellis/trellisd.env', 'environment file is optional ("-")');
  t.equal(value('Service', 'Type'), 'simple', 'trellisd does not notify systemd');
  t.equal(value('Service', 'Restart'), 'on-failure', 'restarted when it fails');
  t.equal(value('Service', 'RestartPreventExitStatus'), '2', 'a configuration error is not retried');
  const restartSec = /^(\d+)s$/.exec(value('Service', 'RestartSec') ?? '');
  const holdTime = CONFIG_KEYS.find((k) => k.path === 'holdTime')?.min;
  t.ok(restartSec !== null && holdTime !== undefined && Number(restartSec[1]) * 1000 < holdTime / 2, 'a restart fits well inside the shortest hold time, so the lease is kept');
  t.equal(value('Unit', 'StartLimitIntervalSec'), '0', 'never stops restarting');
  t.equal(value('Service', 'KillSignal'), 'SIGTERM', 'SIGTERM stops trellisd and keeps the lease');
  t.equal(value('Service', 'KillMode'), 'mixed', 'only trellisd gets SIGTERM; it stops its own helpers');
  t.match(value('Service', 'TimeoutStopSec') ?? '', /^\d+s$/, 'a stop timeout is set');
  t.match(value('Service', 'LimitNOFILE') ?? '', /^\d+$/, 'a file descriptor limit is set');
});

t.test('ordering: after the network is online, etcd optional', async (t) => {
  t.ok(words('Unit', 'Wants').includes('network-online.target'), 'Wants=network-online.target');
  t.ok(words('Unit', 'After').includes('network-online.target'), 'After=network-online.target');
  t.ok(words('Unit', 'After').includes('etcd.service'), 'ordered after a local etcd, if there is one');
  const strong = ['Requires', 'Requisite', 'BindsTo', 'Wants'].flatMap((k) => words('Unit', k));
  t.notOk(strong.includes('etcd.service'), 'etcd on this host is never required');
});

t.test('hardening', async (t) => {
  const expect: Array<[string, string]> = [
    ['User', 'root'],
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['PrivateDevices', 'yes'],
    ['ProtectKernelTunables', 'yes'],
    ['ProtectKernelModules', 'yes'],
    ['ProtectKernelLogs', 'yes'],
    ['ProtectControlGroups', 'yes'],
    ['RestrictNamespaces', 'yes'],
    ['RestrictRealtime', 'yes'],
    ['RestrictSUIDSGID', 'yes'],
    ['LockPersonality', 'yes'],
    ['SystemCallArchitectures', 'native'],
    ['UMask', '0077'],
  ];
  for (const [key, want] of expect) t.equal(value('Service', key), want, `${key}=${want}`);
  const caps = ['CAP_NET_ADMIN', 'CAP_NET_RAW'];
  t.same(words('Service', 'CapabilityBoundingSet').sort(), caps, 'bounding set: exactly CAP_NET_ADMIN and CAP_NET_RAW');
  t.same(words('Service', 'AmbientCapabilities').sort(), caps, 'ambient set: exactly CAP_NET_ADMIN and CAP_NET_RAW');
  t.same(words('Service', 'RestrictAddressFamilies').sort(), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX'], 'netlink, unix and IP sockets only');
  t.same(values('Service', 'SystemCallFilter'), ['@system-service', '~@privileged @resources'], 'system calls of ordinary services only');
  t.equal(value('Service', 'SystemCallErrorNumber'), 'EPERM', 'a filtered call fails instead of killing trellisd');
  t.same(values('Service', 'MemoryDenyWriteExecute'), [], "MemoryDenyWriteExecute is unset: Node's JIT needs W+X memory");
  t.same(values('Service', 'ReadWritePaths'), [], 'nothing writable beyond the state and runtime directories');
});

t.test('directories match the configuration defaults', async (t) => {
  t.equal(value('Service', 'StateDirectory'), 'trellis', 'StateDirectory=trellis (/var/lib/trellis)');
  t.equal(configDefault('stateDir'), '/var/lib/trellis', 'stateDir default is the StateDirectory');
  t.equal(value('Service', 'RuntimeDirectory'), 'trellis', 'RuntimeDirectory=trellis (/run/trellis)');
  t.equal(value('Service', 'RuntimeDirectoryPreserve'), 'yes', 'the IPAM socket directory survives restarts');
  t.equal(dirname(configDefault('ipam.socket')), '/run/trellis', 'ipam.socket default lies in the RuntimeDirectory');
});

function systemdAnalyze(args: string[]): { status: number | null; stdout: string; stderr: string; error?: Error } {
  const r = spawnSync('systemd-analyze', args, {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, SYSTEMD_LOG_LEVEL: 'info', SYSTEMD_LOG_TARGET: 'console', SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: '' },
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ...(r.error ? { error: r.error } : {}) };
}

const version = systemdAnalyze(['--version']);
const noSystemd = version.error !== undefined || version.status !== 0 ? 'systemd-analyze is not installed (Debian package systemd)' : false;
const systemUnits = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(join(d, 'multi-user.target')));
const skip = noSystemd || (systemUnits === undefined ? 'no system unit directory with multi-user.target' : false);

/** A scratch root: the host's system units, the unit under test, a stub at its ExecStart path. */
function scratchRoot(t: Teardown): string {
  const root = ownedTempDir('systemd');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  cpSync(systemUnits as string, join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
  writeFileSync(join(root, 'etc/systemd/system', UNIT_NAME), UNIT_TEXT);
  mkdirSync(join(root, dirname(binary)), { recursive: true });
  writeFileSync(join(root, binary), '#!/bin/sh\nexit 0\n');
  chmodSync(join(root, binary), 0o755);
  return root;
}

/** Lines of systemd's diagnostics that concern the unit under test. */
function aboutUnit(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.includes('trellisd'));
}

t.test('systemd-analyze verify accepts the unit without a single warning', { skip }, async (t) => {
  t.comment(version.stdout.split('\n')[0] ?? '');
  t.ok(binary.startsWith('/'), 'ExecStart names an absolute path');
  const root = scratchRoot(t);
  const r = systemdAnalyze(['verify', '--man=no', '--no-pager', `--root=${root}`, UNIT_NAME]);
  for (const line of r.stderr.split('\n').filter((l) => l !== '' && !l.includes('trellisd'))) t.comment(`not about ${UNIT_NAME}, ignored: ${line}`);
  t.same(aboutUnit(r.stderr), [], 'no diagnostics about the unit');
  t.equal(r.status, 0, 'exit status 0');

  // The check itself can fail: the same run reports a misspelt key.
  writeFileSync(join(root, 'etc/systemd/system', UNIT_NAME), UNIT_TEXT.replace(/^NoNewPrivileges=yes$/m, 'NoNewPrivilege=yes'));
  const bad = systemdAnalyze(['verify', '--man=no', '--no-pager', `--root=${root}`, UNIT_NAME]);
  t.match(aboutUnit(bad.stderr).join('\n'), /Unknown key 'NoNewPrivilege'/, 'a misspelt key is reported');
});

t.test('systemd-analyze security rates the exposure', { skip }, async (t) => {
  const root = scratchRoot(t);
  const r = systemdAnalyze(['security', '--offline=yes', '--no-pager', `--root=${root}`, UNIT_NAME]);
  const m = /Overall exposure level for trellisd\.service: (\d+(?:\.\d+)?) (\S+)/.exec(r.stdout);
  if (r.status !== 0 || m === null) {
    t.comment(`systemd-analyze security --offline does not work here (exit ${r.status}): ${r.stderr.trim().split('\n')[0] ?? ''}`);
    return;
  }
  t.comment(`exposure ${m[1]} ${m[2]} (0 = fully locked down, 10 = unprotected)`);
  t.same(aboutUnit(r.stderr), [], 'no diagnostics about the unit');
  // Deep in systemd's "OK" band; dropping the capability bounding set or the
  // system call filter alone raises it above 3.
  t.ok(Number(m[1]) <= 3, `exposure ${m[1]} is at most 3.0`);
});
