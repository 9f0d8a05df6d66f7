// Detection of what the configuration leaves out (daemon/host-detect.ts),
// through `trellisd --check-config` run inside a lab namespace that plays a
// host: interface and hostIP from the default route (or from each other),
// nodeName from TRELLIS_NODE_NAME, the veth MTU from the interface; each value
// annotated with where it came from. A host without a default route fails
// with the key to set.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { Lab, needRoot } from '../../lab/netns.js';
import { bin } from '../../lab/trellis.js';

const skip = needRoot();

function checkConfig(ns: string, args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const clean: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env };
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, bin('daemon/trellisd'), '--check-config', ...args], { encoding: 'utf8', env: clean, timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

t.test('detected from the default route and the interface', { skip }, async (t) => {
  const lab = new Lab(t);
  const host = await lab.ns('detect');
  const ip = (...args: string[]): void => void execFileSync('ip', ['-n', host.name, ...args]);
  const peer = await lab.ns('detect-peer');
  await lab.veth(host, 'uplink0', peer, 'up-peer0');
  await lab.veth(host, 'other0', peer, 'other-peer0');
  ip('link', 'set', 'uplink0', 'mtu', '1400');
  ip('addr', 'add', '198.18.0.10/24', 'dev', 'uplink0');
  ip('addr', 'add', '198.18.7.5/24', 'dev', 'other0');
  ip('link', 'set', 'uplink0', 'up');
  ip('link', 'set', 'other0', 'up');

  const noRoute = checkConfig(host.name, []);
  t.equal(noRoute.code, 2, 'no default route, nothing configured: a configuration error');
  t.match(noRoute.stderr, /interface is not set and cannot be detected: there is no IPv4 default route; set it in the file, with --interface or TRELLIS_INTERFACE/);

  ip('route', 'add', 'default', 'via', '198.18.0.1', 'dev', 'uplink0');
  const out = checkConfig(host.name, ['--cni-install', 'true'], { TRELLIS_NODE_NAME: 'node-from-downward-api' });
  t.equal(out.code, 0, out.stderr);
  t.match(out.stdout, /^nodeName: node-from-downward-api # from TRELLIS_NODE_NAME$/m);
  t.match(out.stdout, /^hostIP: 198\.18\.0\.10 # detected from the default route$/m);
  t.match(out.stdout, /^interface: uplink0 # detected from the default route$/m);
  t.match(out.stdout, /^ {2}mtu: 1400 # detected from uplink0$/m, 'veth MTU from the host interface');

  const byAddress = checkConfig(host.name, [], { TRELLIS_HOST_IP: '198.18.7.5' });
  t.equal(byAddress.code, 0, byAddress.stderr);
  t.match(byAddress.stdout, /^hostIP: 198\.18\.7\.5 # from TRELLIS_HOST_IP$/m);
  t.match(byAddress.stdout, /^interface: other0 # the interface holding 198\.18\.7\.5$/m, 'the interface carrying hostIP, not the default route');

  const configured = checkConfig(host.name, ['--host-ip', '198.18.0.10', '--interface', 'other0', '--cni-install', 'true', '--cni-mtu', '1300']);
  t.equal(configured.code, 0, configured.stderr);
  t.match(configured.stdout, /^hostIP: 198\.18\.0\.10$/m, 'configured values carry no note');
  t.match(configured.stdout, /^interface: other0$/m);
  t.match(configured.stdout, /^ {2}mtu: 1300$/m);

  const strayIP = checkConfig(host.name, ['--host-ip', '198.18.9.9']);
  t.equal(strayIP.code, 2);
  t.match(strayIP.stderr, /interface is not set and cannot be detected: no interface holds hostIP 198\.18\.9\.9/);
});
