// Failures of the trellis plugin against a real trellisd: each gives the
// right CNI code and message on stdout, exit status 1, no stack trace, and
// leaves nothing half-configured (no veth with the plugin's prefix on the
// host, no interface in the pod, no allocation in etcd).

import t, { type Test } from 'tap';
import { join } from 'node:path';
import { needRoot } from '../../lab/netns.js';
import { daemon } from '../../lab/trellis.js';
import { cniNode, etcdAllocations, invoke, pluginVeths, type CniNode, type Outcome } from '../../lab/cni-harness.js';

const skip = needRoot();

const TINY_TOPOLOGY = `
network: 100.100.0.0/28
blockSize: 30
subnetSize: 30
zones:
  - name: zone-a
    subnets:
      - id: subnet-tiny
        cidr: 198.18.1.0/24
`;

t.test('failures leave nothing behind', { skip }, async (t) => {
  const node = await cniNode(t);
  const { lab, host, path, socket } = node;
  const conf = (extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'trellis', type: 'trellis', socket, ...extra });

  /** Runs one failing ADD and checks the outcome and that nothing is left over. */
  async function failingAdd(
    t: Test,
    what: { containerId: string; config?: Record<string, unknown> | string; netns?: string; omit?: string[]; node?: CniNode },
  ): Promise<Outcome> {
    const n = what.node ?? node;
    const pod = await n.lab.ns();
    const netns = what.netns ?? `/var/run/netns/${pod.name}`;
    const out = await invoke({ command: 'ADD', hostNs: n.host.name, containerId: what.containerId, netns, path, config: what.config ?? conf(), omit: what.omit });
    t.equal(out.code, 1, 'exit status 1');
    t.notMatch(out.stdout + out.stderr, /\n\s+at /, 'no stack trace');
    t.same(await pluginVeths(n.host.name), [], 'no plugin veth on the host');
    t.same(
      (await n.lab.exec(pod, 'ip', ['-o', 'link', 'show'])).split('\n').filter((l) => l !== '').map((l) => l.split(': ')[1]),
      ['lo'],
      'nothing in the pod namespace',
    );
    const held = [...(await etcdAllocations(n.etcd.endpoint)).values()].filter((a) => a.containerId === what.containerId);
    t.same(held, [], 'no allocation in etcd');
    return out;
  }

  t.test('malformed JSON on stdin', async (t) => {
    const out = await failingAdd(t, { containerId: 'bad-json', config: '{"cniVersion": "1.0.0", "name": ' });
    t.match(out.json, { code: 6, msg: /^error decoding network config from stdin: / });
  });

  t.test('missing CNI_COMMAND', async (t) => {
    const out = await failingAdd(t, { containerId: 'no-command', omit: ['CNI_COMMAND'] });
    t.match(out.json, { code: 4, msg: 'required env variables [CNI_COMMAND] missing' });
  });

  t.test('missing CNI_NETNS and CNI_CONTAINERID', async (t) => {
    const out = await failingAdd(t, { containerId: 'no-netns', omit: ['CNI_NETNS', 'CNI_CONTAINERID'] });
    t.match(out.json, { cniVersion: '1.1.0', code: 4, msg: 'required env variables [CNI_CONTAINERID,CNI_NETNS] missing' });
  });

  t.test('a container id with a slash', async (t) => {
    const out = await failingAdd(t, { containerId: 'a/b' });
    t.match(out.json, { code: 4, msg: 'invalid characters in containerID', details: 'a/b' });
  });

  t.test('unsupported cniVersion', async (t) => {
    const out = await failingAdd(t, { containerId: 'old-version', config: conf({ cniVersion: '0.3.1' }) });
    t.match(out.json, { code: 1, msg: 'incompatible CNI versions', details: 'config cniVersion is "0.3.1", plugin supports 0.4.0, 1.0.0, 1.1.0' });
  });

  t.test('an ipam section under the trellis plugin itself', async (t) => {
    const out = await failingAdd(t, { containerId: 'with-ipam', config: conf({ ipam: { type: 'host-local' } }) });
    t.match(out.json, { code: 2, msg: /^unsupported field "ipam"/ });
  });

  t.test('an invalid mtu', async (t) => {
    const out = await failingAdd(t, { containerId: 'bad-mtu', config: conf({ mtu: 'big' }) });
    t.match(out.json, { code: 7, msg: 'mtu must be an integer from 68 to 65535' });
  });

  t.test('a netns path that does not exist', async (t) => {
    const out = await failingAdd(t, { containerId: 'no-such-ns', netns: '/var/run/netns/trl-does-not-exist' });
    t.match(out.json, { code: 3, msg: 'network namespace /var/run/netns/trl-does-not-exist does not exist' });
  });

  t.test('a netns path that is not a network namespace', async (t) => {
    const out = await failingAdd(t, { containerId: 'not-a-ns', netns: '/proc/self/ns/uts' });
    t.match(out.json, { code: 102, msg: /cannot enter network namespace \/proc\/self\/ns\/uts/ });
  });

  t.test('the pod already has an interface of that name: the kernel refuses', async (t) => {
    const pod = await lab.ns('pod-busy');
    await lab.exec(pod, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0-peer']);
    const out = await invoke({ command: 'ADD', hostNs: host.name, containerId: 'busy-1', netns: `/var/run/netns/${pod.name}`, path, config: conf() });
    t.match(out.json, { code: 103, msg: /^configuring the pod side: RTNETLINK answers: File exists \(ip link add name eth0 / });
    t.same(await pluginVeths(host.name), [], 'no plugin veth on the host');
    t.match(await lab.exec(pod, 'ip', ['-o', 'link', 'show', 'eth0']), /eth0@eth0-peer:/, 'the existing interface is untouched');
    const held = [...(await etcdAllocations(node.etcd.endpoint)).values()].filter((a) => a.containerId === 'busy-1');
    t.same(held, [], 'the allocation was released');
  });

  t.test('trellisd down', async (t) => {
    const stopped = daemon(t, { etcd: node.etcd.endpoint, nodeName: 'cni-stopped', hostIP: '198.18.1.61' });
    await stopped.start('IPAM API listening');
    await stopped.stop();
    const sock = join(stopped.stateDir, 'trellisd.sock');
    const out = await failingAdd(t, { containerId: 'daemon-down', config: conf({ socket: sock }) });
    t.match(out.json, { code: 100, msg: new RegExp(`^trellisd is not reachable at ${sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `) });
    const del = await invoke({ command: 'DEL', hostNs: host.name, containerId: 'daemon-down', path, config: conf({ socket: sock }) });
    t.match(del.json, { code: 100 }, 'DEL fails too, so that the runtime retries it');
  });

  t.test('the subnet has no free address', async (t) => {
    const tiny = await cniNode(t, { nodeName: 'cni-tiny', topology: TINY_TOPOLOGY });
    const tinyConf = { ...conf(), socket: tiny.socket };
    const call = async (command: 'ADD' | 'DEL', containerId: string): Promise<Outcome> => {
      const netns = command === 'ADD' ? `/var/run/netns/${(await tiny.lab.ns()).name}` : undefined;
      return invoke({ command, hostNs: tiny.host.name, containerId, netns, path, config: tinyConf });
    };
    for (let i = 0; i < 4; i++) t.equal((await call('ADD', `full-${i}`)).code, 0, `address ${i + 1} of the subnet's 4`);
    const out = await call('ADD', 'one-too-many');
    t.match(out.json, { code: 101, msg: /^trellisd: .*\(E_EXHAUSTED\)$/ });
    t.equal((await pluginVeths(tiny.host.name)).length, 4, 'only the four wired pods have veths');
    for (let i = 0; i < 4; i++) t.equal((await call('DEL', `full-${i}`)).code, 0);
    t.same(await pluginVeths(tiny.host.name), []);
    t.same([...(await etcdAllocations(tiny.etcd.endpoint)).keys()], [], 'all released');
  });
});
