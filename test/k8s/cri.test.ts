// A real container runtime on Trellis: two lab hosts in two subnets, each
// running its own containerd (CRI plugin) and trellisd with cni.install.
// trellisd installs the plugin and the configuration list containerd reads;
// pods made through CRI RunPodSandbox get addresses from Trellis, reach each
// other on one host, across hosts and across subnets, and StopPodSandbox /
// RemovePodSandbox tear everything down (CNI DEL: the address is released,
// no veth, no network namespace, no shim left).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { buildClusterLab, type LabHost } from '../../lab/cluster-lab.js';
import { ownedTempDir } from '../../lab/cleanup.js';
import { pluginVeths, REFERENCE_PLUGINS } from '../../lab/cni-harness.js';
import { containerdMissing, startContainerd, type Containerd } from '../../lab/containerd.js';
import { CriClient } from '../../lab/cri-client.js';
import { needRoot } from '../../lab/netns.js';
import { delay } from '../../lab/pids.js';
import { Daemon, ROOT } from '../../lab/trellis.js';
import { rmSync } from 'node:fs';

const skip = needRoot() || containerdMissing() || false;
const SANDBOX_IMAGE = 'localhost/trellis-lab-pause:1';

t.test('pods through CRI on two hosts in two subnets', { skip }, async (t) => {
  const work = ownedTempDir('cri');
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const archive = join(work, 'pause.oci.tar');
  execFileSync('bash', [join(ROOT, 'deploy/image/build.sh'), 'pause', archive, SANDBOX_IMAGE], { stdio: ['ignore', 'pipe', 'inherit'] });

  const cniDirs = (node: string): { bin: string; conf: string } => ({ bin: join(work, node, 'bin'), conf: join(work, node, 'net.d') });
  const cluster = await buildClusterLab(t, {
    subnets: 2,
    hostsPerSubnet: 1,
    makeDaemon: (o) => {
      const d = cniDirs(o.nodeName);
      return new Daemon({ ...o, args: [...(o.args ?? []), '--cni-install', 'true', '--cni-bin-dir', d.bin, '--cni-conf-dir', d.conf, '--ipam-address-rest', '0s'] });
    },
  });
  const runtimes = new Map<string, Containerd>();
  for (const host of cluster.hosts) {
    const d = cniDirs(host.name);
    mkdirSync(d.bin, { recursive: true });
    // containerd runs loopback itself; the configuration list chains portmap and bandwidth.
    for (const p of ['loopback', 'portmap', 'bandwidth']) symlinkSync(join(REFERENCE_PLUGINS, p), join(d.bin, p));
    runtimes.set(host.name, await startContainerd(t, { ns: host.ns, cniBinDir: d.bin, cniConfDir: d.conf, sandboxImage: SANDBOX_IMAGE, sandboxArchive: archive }));
  }
  t.same(readdirSync(cniDirs('h1-0').conf), [], 'no network configuration before trellisd is ready');

  await cluster.startDaemons(cluster.hosts, 'CNI plugin and configuration installed', 60_000);
  for (const host of cluster.hosts) {
    const list = JSON.parse(readFileSync(join(cniDirs(host.name).conf, '10-trellis.conflist'), 'utf8')) as { plugins: Array<{ type: string; socket?: string; mtu?: number }> };
    t.same(list.plugins.map((p) => p.type), ['trellis', 'portmap', 'bandwidth'], `${host.name}: configuration list installed`);
    t.equal(list.plugins[0]?.socket, join(host.daemon.stateDir, 'trellisd.sock'));
    t.ok(existsSync(join(cniDirs(host.name).bin, 'trellis')), `${host.name}: plugin installed`);
  }

  const clients = new Map(cluster.hosts.map((h) => [h.name, new CriClient((runtimes.get(h.name) as Containerd).socket)]));
  t.teardown(() => clients.forEach((c) => c.close()));
  const version = await (clients.get('h1-0') as CriClient).version();
  t.equal(version.runtime_name, 'containerd', `CRI ${version.runtime_api_version} from ${version.runtime_name} ${version.runtime_version}`);

  interface Pod { host: LabHost; id: string; ip: string; netns: string }
  const pods: Pod[] = [];
  for (const host of cluster.hosts) {
    for (const n of [0, 1]) {
      const cri = clients.get(host.name) as CriClient;
      const id = await cri.runPodSandbox({ name: `pod-${host.name}-${n}`, namespace: 'lab' });
      const status = await cri.podSandboxStatus(id);
      t.equal(status.state, 'SANDBOX_READY', `${host.name}: sandbox ${id.slice(0, 12)} ready with ${status.ip}`);
      t.ok(status.netns !== undefined && existsSync(status.netns), 'in its own network namespace');
      pods.push({ host, id, ip: status.ip, netns: status.netns as string });
    }
  }
  for (const pod of pods) {
    const blocks = (await cluster.blocksOf(pod.host)).map((b) => b.prefix);
    t.ok(blocks.some((b) => inPrefix(pod.ip, b)), `${pod.ip} is in a block of ${pod.host.name} (${blocks.join(' ')})`);
  }
  t.equal(new Set(pods.map((p) => p.ip)).size, pods.length, 'every pod has its own address');

  // The router plays the VPC route table between the subnets: each block via its host.
  for (const host of cluster.hosts) {
    for (const b of await cluster.blocksOf(host)) await cluster.lab.exec(cluster.router, 'ip', ['route', 'replace', b.prefix, 'via', host.hostIP]);
  }
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      let reply = { sent: 0, received: 0 };
      for (let i = 0; i < 20 && reply.received === 0; i++) {
        reply = await cluster.ping(basename(from.netns), to.ip, { count: 1 });
        if (reply.received === 0) await delay(250);
      }
      t.equal(reply.received, 1, `${from.ip} (${from.host.name}) reaches ${to.ip} (${to.host.name})`);
    }
  }

  for (const pod of pods) {
    const cri = clients.get(pod.host.name) as CriClient;
    await cri.stopPodSandbox(pod.id);
    await cri.removePodSandbox(pod.id);
    t.notOk(existsSync(pod.netns), `${pod.id.slice(0, 12)}: network namespace removed`);
  }
  for (const host of cluster.hosts) {
    t.same(await pluginVeths(host.ns.name), [], `${host.name}: no pod veth left`);
    t.same((runtimes.get(host.name) as Containerd).shimPids(), [], `${host.name}: no shim left`);
  }
  const records = await cluster.getPrefix('/trellis/v1/');
  const allocated = new Set((await cluster.blocksOf()).flatMap((b) => Object.keys((b as unknown as { allocations?: object }).allocations ?? {})));
  for (const pod of pods) {
    t.notOk(allocated.has(pod.ip), `${pod.ip}: released in etcd`);
    t.notOk(records.some((r) => r.value.includes(pod.id)), `${pod.id.slice(0, 12)}: named by no record`);
  }
});

function inPrefix(ip: string, prefix: string): boolean {
  const toInt = (a: string): number => a.split('.').reduce((n, p) => n * 256 + Number(p), 0);
  const [base, len] = prefix.split('/') as [string, string];
  const size = 2 ** (32 - Number(len));
  return toInt(ip) >= toInt(base) && toInt(ip) < toInt(base) + size;
}
