// The Trellis OCI image (deploy/image/build.sh, `npm run image`), built from
// this machine's packages with no registry and run under containerd: its
// entrypoint is trellisd, `--version` answers, trellisctl and the CNI plugin
// are inside, and trellisd runs from it in a lab host with host networking
// (detecting its interface and address from the host's default route),
// registers with the lab's etcd and installs the CNI plugin, with its own copy
// of the node runtime, into host directories where it runs on the host. One test: building the image is slow.
import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildClusterLab } from '../../lab/cluster-lab.js';
import { ownedTempDir } from '../../lab/cleanup.js';
import { containerdMissing, startContainerd } from '../../lab/containerd.js';
import { needRoot } from '../../lab/netns.js';
import { delay, dieWithParent } from '../../lab/pids.js';
import { ROOT } from '../../lab/trellis.js';

const skip = needRoot() || containerdMissing() || false;
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const IMAGE = `localhost/trellis:${version}`;

t.test('image: built from scratch, --version under containerd, trellisd with host networking', { skip }, async (t) => {
  const work = ownedTempDir('image');
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const archive = join(work, 'trellis.oci.tar');
  execFileSync('bash', [join(ROOT, 'deploy/image/build.sh'), 'trellis', archive, IMAGE], { stdio: ['ignore', 'pipe', 'inherit'] });
  const size = statSync(archive).size;
  t.ok(size > 0 && size < 120 * 1024 * 1024, `archive is ${(size / 1024 / 1024).toFixed(1)} MiB`);

  const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: 1 });
  const host = cluster.hosts[0]!;
  const runtime = await startContainerd(t, { ns: host.ns, cniBinDir: join(work, 'bin'), cniConfDir: join(work, 'net.d'), sandboxImage: IMAGE });
  await runtime.importImage(archive);

  const info = await runtime.ctr(['run', '--rm', IMAGE, 'trellisd-version', '/usr/bin/node', '/opt/trellis/dist/daemon/trellisd.js', '--version']);
  t.equal(info.trim(), `trellisd ${version}`, 'trellisd --version runs in the image');
  const ctl = await runtime.ctr(['run', '--rm', IMAGE, 'trellisctl-help', '/usr/local/bin/trellisctl', '--help']);
  t.match(ctl, /Usage: trellisctl COMMAND/, 'trellisctl runs in the image');
  const nft = await runtime.ctr(['run', '--rm', IMAGE, 'nft-version', '/usr/bin/nft', '--version']);
  t.match(nft, /^nftables v\d/, 'nft (egress masquerade) runs in the image');
  const spec = await runtime.ctr(['images', 'ls', '--quiet']);
  t.match(spec, IMAGE, 'image imported under its name');
  const entry = JSON.parse(await runtime.ctr(['run', '--rm', IMAGE, 'trellis-ls', '/usr/bin/node', '-e', 'console.log(JSON.stringify(require("node:fs").readdirSync("/opt/trellis/dist/cni")))'])) as string[];
  t.same(entry, ['trellis.cjs'], 'the CNI plugin bundle is in the image');

  // trellisd from the image on the lab host's own network (no --host-ip, no --interface).
  const state = join(work, 'state');
  const run = join(work, 'run');
  const cniBin = join(work, 'host-cni-bin');
  const cniConf = join(work, 'host-cni-net.d');
  for (const dir of [state, run, cniBin, cniConf]) mkdirSync(dir);
  const same = (dir: string): string[] => ['--mount', `type=bind,src=${dir},dst=${dir},options=rbind:rw`];
  const [cmd, args] = dieWithParent('ctr', ['--address', runtime.socket, '--namespace', 'k8s.io', 'run', '--rm', '--net-host', '--privileged',
    '--mount', `type=bind,src=${state},dst=/var/lib/trellis,options=rbind:rw`, '--mount', `type=bind,src=${run},dst=/run/trellis,options=rbind:rw`,
    ...same(cniBin), ...same(cniConf),
    IMAGE, 'trellisd-host', '/usr/bin/node', '/opt/trellis/dist/daemon/trellisd.js', '--node-name', host.name, '--etcd-endpoints', cluster.endpoint, '--hold-time', '3s',
    '--cni-install', 'true', '--cni-bin-dir', cniBin, '--cni-conf-dir', cniConf]);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (logs += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (logs += d));
  t.teardown(async () => {
    await runtime.ctr(['tasks', 'kill', '--signal', 'SIGKILL', 'trellisd-host']).catch(() => undefined);
    await delay(200);
  });
  for (let i = 0; i < 300 && !logs.includes('cluster view synced') && child.exitCode === null; i++) await delay(100);
  t.match(logs, 'cluster view synced', `trellisd runs from the image:\n${logs.slice(-1500)}`);
  for (let i = 0; i < 300 && !logs.includes('CNI plugin and configuration installed') && child.exitCode === null; i++) await delay(100);
  t.match(logs, 'CNI plugin and configuration installed', 'trellisd from the image installs the plugin on the host');
  t.match(readFileSync(join(cniConf, '10-trellis.conflist'), 'utf8'), '"mtu": 1500', 'configuration list with the MTU of the detected interface');
  t.match(readFileSync(join(cniBin, 'trellis'), 'utf8'), /^#!\/bin\/sh\n/, 'the plugin wraps its own node runtime');
  const plugin = spawnSync(join(cniBin, 'trellis'), [], { env: { CNI_COMMAND: 'VERSION', PATH: '/usr/bin:/bin' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' });
  t.equal(plugin.status, 0, `the plugin installed from the image runs on the host: ${plugin.stderr}`);
  t.match(plugin.stdout, '"supportedVersions"');
  const node = (await cluster.getPrefix(cluster.keys.node(host.name)))[0];
  t.match(JSON.parse(node?.value ?? '{}') as object, { name: host.name, hostIp: host.hostIP }, 'registered with the host address it detected');
  await runtime.ctr(['tasks', 'kill', '--signal', 'SIGTERM', 'trellisd-host']).catch((err: Error) => t.fail(`SIGTERM: ${err.message}`));
  for (let i = 0; i < 100 && child.exitCode === null; i++) await delay(100);
  t.match(logs, 'stopping (the lease is kept until it expires)', 'stops on SIGTERM');
});
