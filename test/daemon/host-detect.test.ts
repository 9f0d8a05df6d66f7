// Detection of what the configuration leaves out (daemon/host-detect.ts),
// through `trellisd --check-config` run inside a lab namespace that plays a
// host: interface and hostIP from the default route (or from each other),
// nodeName from TRELLIS_NODE_NAME, the veth MTU from the interface; each value
// annotated with where it came from. A host without a default route fails
// with the key to set. In VPC mode, against a lab metadata service (IMDSv2):
// hostIP from local-ipv4 and the VPC CIDRs that egress leaves untranslated.
import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { instanceValues, startImds } from '../../lab/imds.js';
import { Lab, needRoot } from '../../lab/netns.js';
import { bin } from '../../lab/trellis.js';

const skip = needRoot();

function checkConfig(ns: string, args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const clean: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env };
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, bin('daemon/trellisd'), '--check-config', ...args], { encoding: 'utf8', env: clean, timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** checkConfig without blocking this process (which serves the lab metadata service). */
function checkConfigAsync(ns: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, bin('daemon/trellisd'), '--check-config', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
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

t.test('VPC mode: hostIP from the instance metadata (local-ipv4), the VPC CIDRs for egress', { skip }, async (t) => {
  const lab = new Lab(t);
  const host = await lab.ns('imds');
  const peer = await lab.ns('imds-peer');
  await lab.veth(host, 'ens5', peer, 'ens5-peer');
  await lab.addr(host, 'ens5', '198.18.3.20/24');
  const imds = await startImds(t, { netns: host.name, values: instanceValues({ localIPv4: '198.18.3.20', vpcCidrs: ['198.18.0.0/16', '198.19.0.0/24'] }) });
  const endpoint = imds.nsEndpoint as string;
  const vpc = ['--vpc-enabled', '--vpc-metadata-endpoint', endpoint];

  const out = await checkConfigAsync(host.name, vpc);
  t.equal(out.code, 0, out.stderr);
  t.match(out.stdout, /^hostIP: 198\.18\.3\.20 # from the instance metadata \(local-ipv4\)$/m);
  t.match(out.stdout, /^interface: ens5 # the interface holding 198\.18\.3\.20$/m, 'no default route needed: the interface holding the metadata address');
  t.match(out.stdout, /^ {2}nonMasqueradeCidrs: \[ 198\.18\.0\.0\/16, 198\.19\.0\.0\/24 \] # the VPC CIDR\(s\) from the instance metadata$/m);
  t.match(out.stdout, /^# egress\.masquerade: decided at start: on unless the pod network in etcd lies inside the VPC CIDR\(s\) 198\.18\.0\.0\/16, 198\.19\.0\.0\/24$/m);
  t.same(imds.requests.filter((r) => !r.startsWith('PUT')), [
    'GET /latest/meta-data/local-ipv4',
    'GET /latest/meta-data/mac',
    'GET /latest/meta-data/network/interfaces/macs/02:00:c6:12:01:0a/vpc-ipv4-cidr-blocks',
  ], 'what was read');
  t.ok(imds.requests.every((r, i) => !r.startsWith('GET') || imds.requests[i - 1]?.startsWith('PUT') === true || imds.requests[i - 1]?.startsWith('GET') === true), 'IMDSv2: a token before the reads');
  t.equal(imds.requests[0], 'PUT /latest/api/token');

  imds.requests.length = 0;
  const configured = await checkConfigAsync(host.name, [...vpc, '--host-ip', '198.18.3.20', '--egress-non-masquerade-cidrs', '198.18.3.0/24']);
  t.equal(configured.code, 0, configured.stderr);
  t.match(configured.stdout, /^hostIP: 198\.18\.3\.20$/m, 'a configured hostIP carries no note');
  t.match(configured.stdout, /^ {2}nonMasqueradeCidrs:\n {4}- 198\.18\.3\.0\/24$/m, 'configured CIDRs kept, no note');
  t.notOk(imds.requests.includes('GET /latest/meta-data/local-ipv4'), 'a configured hostIP is not looked up');
  t.ok(imds.requests.some((r) => r.endsWith('/vpc-ipv4-cidr-blocks')), 'the VPC CIDRs still decide egress.masquerade');

  imds.requests.length = 0;
  const settled = await checkConfigAsync(host.name, [...vpc, '--host-ip', '198.18.3.20', '--egress-masquerade', 'false', '--egress-non-masquerade-cidrs', '']);
  t.equal(settled.code, 0, settled.stderr);
  t.same(imds.requests, [], 'nothing left to detect: the metadata service is not asked');

  const plain = await checkConfigAsync(host.name, ['--host-ip', '198.18.3.20', '--vpc-metadata-endpoint', endpoint]);
  t.equal(plain.code, 0, plain.stderr);
  t.match(plain.stdout, /^# egress\.masquerade: off \(no VPC: vpc\.enabled is false\)$/m);
  t.notMatch(plain.stdout, /nonMasqueradeCidrs/, 'no VPC: no non-masquerade CIDRs');
  t.same(imds.requests, [], 'plain host: the metadata service is never asked');
});

t.test('VPC mode: what the instance metadata cannot give', { skip }, async (t) => {
  const lab = new Lab(t);
  const host = await lab.ns('imds-bad');
  const peer = await lab.ns('imds-bad-peer');
  await lab.veth(host, 'ens5', peer, 'ens5-peer');
  await lab.addr(host, 'ens5', '198.18.3.20/24');
  // An address no interface of this host holds, and no interface paths.
  const imds = await startImds(t, { netns: host.name, values: { 'local-ipv4': '198.18.4.4', mac: '02:00:c6:12:01:0a' } });
  const vpc = ['--vpc-enabled', '--vpc-metadata-endpoint', imds.nsEndpoint as string];

  const stray = await checkConfigAsync(host.name, vpc);
  t.equal(stray.code, 2);
  t.match(stray.stderr, /interface is not set and cannot be detected: no interface holds hostIP 198\.18\.4\.4/);

  const noCidrs = await checkConfigAsync(host.name, [...vpc, '--host-ip', '198.18.3.20']);
  t.equal(noCidrs.code, 0, noCidrs.stderr);
  t.notMatch(noCidrs.stdout, /nonMasqueradeCidrs/, 'no CIDRs made up');
  t.match(noCidrs.stdout, /^# egress\.masquerade: off \(the VPC CIDR blocks are not known: the instance metadata at http:\/\/127\.0\.0\.1:\d+ gave no VPC CIDR blocks \(GET .*vpc-ipv4-cidr-blocks: HTTP 404\)\)$/m);

  const forced = await checkConfigAsync(host.name, [...vpc, '--host-ip', '198.18.3.20', '--egress-masquerade']);
  t.equal(forced.code, 2, 'masquerade set on without knowing what the VPC is: an error');
  t.match(forced.stderr, /egress\.nonMasqueradeCidrs is not set and cannot be detected: the instance metadata at .* gave no VPC CIDR blocks .*; set it in the file, with --egress-non-masquerade-cidrs or TRELLIS_EGRESS_NON_MASQUERADE_CIDRS/);

  await imds.close();
  const down = await checkConfigAsync(host.name, vpc);
  t.equal(down.code, 2);
  t.match(down.stderr, /hostIP is not set and cannot be detected: the instance metadata at http:\/\/127\.0\.0\.1:8080 gave no local-ipv4/);
});
