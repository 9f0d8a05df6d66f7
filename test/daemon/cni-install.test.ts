// trellisd's CNI install (daemon/cni-install.ts): the plugin and the
// configuration list land in temporary cni.binDir / cni.confDir, atomically
// and only once trellisd is ready; files of another network are never
// overwritten unless cni.replaceExisting; `trellisd --withdraw` removes the
// configuration list. The installed plugin is executed for real.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig, type TrellisConfig } from '../../src/config/load.js';
import { conflist, installCni, interfaceMtu, PLUGIN_MARK, removeConflist, writeAtomic } from '../../daemon/cni-install.js';
import { startEtcd } from '../../lab/etcd.js';
import { bin, daemon, runCli, seedTopology } from '../../lab/trellis.js';

const log = pino({ level: 'silent' });

function dirs(t: { teardown: (fn: () => void) => void }): { bin: string; conf: string } {
  const root = mkdtempSync(join(tmpdir(), 'trellis-cni-install-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const out = { bin: join(root, 'bin'), conf: join(root, 'net.d') };
  mkdirSync(out.bin);
  mkdirSync(out.conf);
  return out;
}

function config(d: { bin: string; conf: string }, extra: Record<string, string> = {}): TrellisConfig {
  const flags = new Map<string, string>([
    ['hostIP', '198.18.1.70'],
    ['interface', 'lo'],
    ['cni.install', 'true'],
    ['cni.binDir', d.bin],
    ['cni.confDir', d.conf],
    ['ipam.socket', '/run/trellis-test/trellisd.sock'],
    ...Object.entries(extra),
  ]);
  return loadConfig({ flags, env: {} });
}

t.test('configuration keys: defaults and checks', async (t) => {
  const c = loadConfig({ flags: new Map([['hostIP', '198.18.1.70'], ['interface', 'lo']]), env: {} });
  t.same(c.cni, { install: false, binDir: '/opt/cni/bin', confDir: '/etc/cni/net.d', confName: '10-trellis.conflist', mtu: undefined, replaceExisting: false });
  t.throws(
    () => loadConfig({ flags: new Map([['hostIP', '198.18.1.70'], ['interface', 'lo'], ['cni.confName', '../x.conflist'], ['cni.binDir', 'opt'], ['cni.mtu', '9']]), env: {} }),
    /--cni-mtu: 9 is out of range 68\.\.65535[\s\S]*cni\.binDir must be an absolute path[\s\S]*cni\.confName must be a plain file name/,
  );
});

t.test('installs the plugin, then the configuration list; a second run changes nothing', async (t) => {
  const d = dirs(t);
  const c = config(d, { 'cni.mtu': '1400' });
  const first = await installCni(c, log);
  t.same(first.written, [join(d.bin, 'trellis'), join(d.conf, '10-trellis.conflist')]);
  const plugin = readFileSync(join(d.bin, 'trellis'), 'utf8');
  t.equal(plugin.split('\n')[0], `#!${process.execPath}`, 'the #! line names node by absolute path');
  t.ok(plugin.split('\n')[1]?.startsWith(`// ${PLUGIN_MARK}`), 'marked as installed by trellisd');
  t.equal(statSync(join(d.bin, 'trellis')).mode & 0o777, 0o755);
  const list = JSON.parse(readFileSync(join(d.conf, '10-trellis.conflist'), 'utf8')) as ReturnType<typeof conflist>;
  t.same(list, conflist({ socket: '/run/trellis-test/trellisd.sock', mtu: 1400 }));
  t.same((list.plugins as Array<{ type: string }>).map((p) => p.type), ['trellis', 'portmap', 'bandwidth']);
  t.same(readdirSync(d.bin), ['trellis'], 'no temporary file left in binDir');
  t.same(readdirSync(d.conf), ['10-trellis.conflist'], 'no temporary file left in confDir');

  const again = await installCni(c, log);
  t.same(again.written, [], 'already in place: nothing rewritten');

  const version = spawnSync(join(d.bin, 'trellis'), [], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' });
  t.equal(version.status, 0, `the installed plugin runs: ${version.stderr}`);
  t.ok((JSON.parse(version.stdout) as { supportedVersions: string[] }).supportedVersions.includes('1.0.0'), 'and answers VERSION');
});

t.test('MTU defaults to the interface MTU (a veth takes at most 65535)', async (t) => {
  const d = dirs(t);
  const lo = Number(readFileSync('/sys/class/net/lo/mtu', 'utf8'));
  t.equal(await interfaceMtu('lo'), lo);
  const done = await installCni(config(d), log);
  t.equal(done.mtu, Math.min(lo, 65535));
  await t.rejects(installCni(config(d, { interface: 'trl-no-such0' }), log), { code: 'E_CONFIG', message: /MTU of interface trl-no-such0/ });
});

t.test("another network's files are never overwritten unless cni.replaceExisting", async (t) => {
  const d = dirs(t);
  const foreignList = '{"cniVersion":"0.4.0","name":"other","plugins":[{"type":"bridge"}]}\n';
  writeFileSync(join(d.conf, '10-trellis.conflist'), foreignList);
  await t.rejects(installCni(config(d, { 'cni.mtu': '1500' }), log), { code: 'E_CONFIG', message: /10-trellis\.conflist exists and is not a trellis configuration list/ });
  t.equal(readFileSync(join(d.conf, '10-trellis.conflist'), 'utf8'), foreignList, 'left as it was');
  t.same(readdirSync(d.bin), [], 'nothing installed at all');
  t.notOk(removeConflist(config(d), log), '--withdraw does not remove it either');
  t.equal(readFileSync(join(d.conf, '10-trellis.conflist'), 'utf8'), foreignList);

  rmSync(join(d.conf, '10-trellis.conflist'));
  writeFileSync(join(d.bin, 'trellis'), '#!/bin/sh\necho other\n', { mode: 0o755 });
  await t.rejects(installCni(config(d, { 'cni.mtu': '1500' }), log), { message: /trellis exists and is not a trellis plugin/ });
  t.equal(readFileSync(join(d.bin, 'trellis'), 'utf8'), '#!/bin/sh\necho other\n');
  t.same(readdirSync(d.conf), [], 'no configuration list without the plugin');

  const replaced = await installCni(config(d, { 'cni.mtu': '1500', 'cni.replaceExisting': 'true' }), log);
  t.equal(replaced.written.length, 2, 'replaced with cni.replaceExisting');
  t.ok(readFileSync(join(d.bin, 'trellis'), 'utf8').includes(PLUGIN_MARK));
});

t.test('a failed write leaves neither a partial file nor a temporary one', async (t) => {
  const d = dirs(t);
  mkdirSync(join(d.conf, '10-trellis.conflist')); // rename onto a directory fails
  t.throws(() => writeAtomic(join(d.conf, '10-trellis.conflist'), '{}', 0o644), { code: 'E_UNAVAILABLE' });
  t.same(readdirSync(d.conf), ['10-trellis.conflist']);
  t.same(readdirSync(join(d.conf, '10-trellis.conflist')), []);
});

t.test('trellisd installs once ready, not before; --withdraw removes the configuration list', async (t) => {
  const d = dirs(t);
  const etcd = await startEtcd(t);
  const args = ['--cni-install', 'true', '--cni-bin-dir', d.bin, '--cni-conf-dir', d.conf, '--cni-mtu', '1450'];
  const node = daemon(t, { etcd: etcd.endpoint, nodeName: 'cni-install-node', hostIP: '198.18.1.71', iface: 'lo', args });
  await node.start('waiting for a topology'); // no topology yet: never ready
  t.same(readdirSync(d.conf), [], 'no configuration list while trellisd is not ready');
  t.same(readdirSync(d.bin), [], 'nor a plugin');

  await seedTopology(etcd.endpoint);
  await node.waitForLog('CNI plugin and configuration installed');
  const list = JSON.parse(readFileSync(join(d.conf, '10-trellis.conflist'), 'utf8')) as ReturnType<typeof conflist>;
  t.same(list, conflist({ socket: join(node.stateDir, 'trellisd.sock'), mtu: 1450 }), 'socket and MTU filled in');
  t.ok(readFileSync(join(d.bin, 'trellis'), 'utf8').startsWith(`#!${process.execPath}\n`));

  await node.stop();
  const out = runCli('daemon/trellisd', ['--withdraw', '--node-name', 'cni-install-node', '--host-ip', '198.18.1.71', '--interface', 'lo',
    '--etcd-endpoints', etcd.endpoint, '--state-dir', node.stateDir, ...args]);
  t.equal(out.code, 0, out.stderr);
  t.same(readdirSync(d.conf), [], 'configuration list removed by --withdraw');
  t.same(readdirSync(d.bin), ['trellis'], 'the plugin stays (pods still need DEL)');
  t.ok(bin('cni/trellis.cjs'));
});

t.test('from the image: the plugin runs with its own copy of the node runtime', async (t) => {
  const d = dirs(t);
  // A runtime list as deploy/image/build.sh writes it, for this machine's node.
  const ldd = spawnSync('ldd', [process.execPath], { encoding: 'utf8' }).stdout;
  const lines = [`node ${process.execPath}`];
  for (const l of ldd.split('\n')) {
    const lib = /=> (\/\S+)/.exec(l);
    const loader = /^\s*(\/\S+)/.exec(l);
    if (lib !== null) lines.push(`lib ${lib[1]}`);
    else if (loader !== null) lines.push(`loader ${loader[1]}`);
  }
  const list = join(d.conf, '..', 'runtime.list');
  writeFileSync(list, `${lines.join('\n')}\n`);
  const done = await installCni(config(d, { 'cni.mtu': '1500' }), log, { runtimeList: list });
  const plugin = readFileSync(join(d.bin, 'trellis'), 'utf8');
  t.match(plugin, /^#!\/bin\/sh\n# trellis CNI plugin, installed by trellisd/, 'a /bin/sh wrapper, marked');
  t.ok(done.written.includes(join(d.bin, 'trellis.d', 'node')), 'node copied beside the plugin');
  t.same(readdirSync(join(d.bin, 'trellis.d')).sort(), ['lib', 'loader', 'node', 'trellis.cjs']);
  const version = spawnSync(join(d.bin, 'trellis'), [], { env: { CNI_COMMAND: 'VERSION', PATH: '/usr/bin:/bin' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' });
  t.equal(version.status, 0, `the wrapped plugin runs: ${version.stderr}`);
  t.ok((JSON.parse(version.stdout || '{}') as { supportedVersions?: string[] }).supportedVersions?.includes('1.0.0'), 'and answers VERSION');
  const again = await installCni(config(d, { 'cni.mtu': '1500' }), log, { runtimeList: list });
  t.same(again.written, [], 'unchanged runtime: nothing rewritten');
});

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

/** The port of the last "HTTP endpoint listening" line of a daemon's log. */
function lastHttpPort(logs: string): number {
  const ports = logs.split('\n').filter((l) => l.includes('"HTTP endpoint listening"')).map((l) => (JSON.parse(l) as { port: number }).port);
  const port = ports[ports.length - 1];
  if (port === undefined) throw new Error(`no HTTP endpoint in the log:\n${logs.slice(-2000)}`);
  return port;
}

t.test('a configuration error under cni.install: up but not ready, the reason in /readyz and the log, no configuration list', async (t) => {
  const d = dirs(t);
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const foreign = '{"cniVersion":"0.4.0","name":"other","plugins":[{"type":"bridge"}]}\n';
  writeFileSync(join(d.conf, '10-trellis.conflist'), foreign);
  const args = ['--cni-install', 'true', '--cni-bin-dir', d.bin, '--cni-conf-dir', d.conf, '--cni-mtu', '1450'];
  const node = daemon(t, { etcd: etcd.endpoint, nodeName: 'cni-hold-node', hostIP: '198.18.1.72', iface: 'lo', args });
  await node.start('staying up, not ready');
  const port = lastHttpPort(node.logs);
  const ready = await get(port, '/readyz');
  t.equal(ready.status, 503);
  t.match(ready.body, /^not ready: configuration error: .*10-trellis\.conflist exists and is not a trellis configuration list/);
  t.equal((await get(port, '/healthz')).status, 200, 'alive: no restart loop');
  t.ok(node.running, 'still running');
  t.equal(readFileSync(join(d.conf, '10-trellis.conflist'), 'utf8'), foreign, "the other network's list untouched");
  t.same(readdirSync(d.bin), [], 'no plugin installed');
  await node.stop();
  t.equal(node.child?.exitCode, 2, 'exits 2 when stopped');

  const d2 = dirs(t);
  const noCa = daemon(t, {
    etcd: 'https://127.0.0.1:2',
    nodeName: 'cni-hold-tls',
    hostIP: '198.18.1.73',
    iface: 'lo',
    args: ['--cni-install', 'true', '--cni-bin-dir', d2.bin, '--cni-conf-dir', d2.conf, '--cni-mtu', '1450', '--etcd-tls-ca', join(d2.conf, 'missing-ca.crt')],
  });
  await noCa.start('staying up, not ready');
  const reply = await get(lastHttpPort(noCa.logs), '/readyz');
  t.equal(reply.status, 503);
  t.match(reply.body, /cannot read etcd .*missing-ca\.crt/, 'names the missing certificate file');
  t.same(readdirSync(d2.conf), [], 'no configuration list');
});
