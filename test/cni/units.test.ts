// The trellis plugin's pure parts, table-driven: CNI environment and
// configuration validation (codes as libcni's skel gives them), result shapes
// per spec version, veth names and MACs, iproute2 quoting, failure
// classification and the choice of stale veths for GC.

import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../lab/trellis.js';
import { Code, CniError, formatError, formatResult, hash64, parseArgs, parseConf, readEnv, vethAlias, vethNames, type Command } from '../../cni-plugin/cni.js';
import { classify, q } from '../../cni-plugin/ip-batch.js';
import { staleVeths } from '../../cni-plugin/upkeep.js';

function codeOf(fn: () => unknown): number | string {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return err instanceof CniError ? err.code : String(err);
  }
}

const fullEnv = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

t.test('readEnv', async (t) => {
  const cases: Array<[string, NodeJS.ProcessEnv, number | string, RegExp?]> = [
    ['complete ADD', fullEnv, 'no error'],
    ['no CNI_COMMAND', { ...fullEnv, CNI_COMMAND: '' }, Code.InvalidEnvironment, /\[CNI_COMMAND\] missing/],
    ['unknown command', { ...fullEnv, CNI_COMMAND: 'PATCH' }, Code.InvalidEnvironment, /unknown CNI_COMMAND: PATCH/],
    ['ADD without netns and path', { ...fullEnv, CNI_NETNS: undefined, CNI_PATH: '' }, Code.InvalidEnvironment, /\[CNI_NETNS,CNI_PATH\] missing/],
    ['DEL without netns', { ...fullEnv, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }, 'no error'],
    ['GC needs only the path', { CNI_COMMAND: 'GC', CNI_PATH: '/x' }, 'no error'],
    ['STATUS needs nothing', { CNI_COMMAND: 'STATUS' }, 'no error'],
    ['VERSION needs nothing', { CNI_COMMAND: 'VERSION' }, 'no error'],
    ['container id with a space', { ...fullEnv, CNI_CONTAINERID: 'a b' }, Code.InvalidEnvironment, /invalid characters in containerID/],
    ['container id starting with a dot', { ...fullEnv, CNI_CONTAINERID: '.abc' }, Code.InvalidEnvironment],
    ['interface name too long', { ...fullEnv, CNI_IFNAME: 'a'.repeat(16) }, Code.InvalidEnvironment, /too long/],
    ['interface name 15 characters', { ...fullEnv, CNI_IFNAME: 'a'.repeat(15) }, 'no error'],
    ['interface name ..', { ...fullEnv, CNI_IFNAME: '..' }, Code.InvalidEnvironment],
    ['interface name with a colon', { ...fullEnv, CNI_IFNAME: 'eth0:1' }, Code.InvalidEnvironment],
    ['CNI_ARGS without =', { ...fullEnv, CNI_ARGS: 'K8S_POD_NAME' }, Code.InvalidEnvironment, /CNI_ARGS: invalid pair/],
  ];
  for (const [name, env, code, msg] of cases) {
    t.equal(codeOf(() => readEnv(env)), code, name);
    if (msg !== undefined) t.throws(() => readEnv(env), msg, `${name}: message`);
  }
  t.same(parseArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;;X=a=b'), { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'ns', K8S_POD_NAME: 'web-0', X: 'a=b' });
  t.match(readEnv({ ...fullEnv, CNI_ARGS: 'K8S_POD_NAME=p' }), { command: 'ADD', containerId: 'abc', ifName: 'eth0', args: { K8S_POD_NAME: 'p' } });
});

t.test('parseConf', async (t) => {
  const base = { cniVersion: '1.0.0', name: 'net', type: 'trellis' };
  const j = (o: unknown) => JSON.stringify(o);
  const cases: Array<[string, string, Command, number | string]> = [
    ['valid', j(base), 'ADD', 'no error'],
    ['not JSON', '{', 'ADD', Code.DecodingFailure],
    ['a JSON array', '[]', 'ADD', Code.DecodingFailure],
    ['no name', j({ ...base, name: undefined }), 'ADD', Code.InvalidConfig],
    ['bad name', j({ ...base, name: 'a b' }), 'ADD', Code.InvalidConfig],
    ['STATUS without a name', j({ cniVersion: '1.1.0', type: 'trellis' }), 'STATUS', 'no error'],
    ['no cniVersion', j({ ...base, cniVersion: undefined }), 'ADD', Code.IncompatibleVersion],
    ['0.3.1', j({ ...base, cniVersion: '0.3.1' }), 'ADD', Code.IncompatibleVersion],
    ['0.4.0 ADD', j({ ...base, cniVersion: '0.4.0' }), 'ADD', 'no error'],
    ['0.4.0 CHECK', j({ ...base, cniVersion: '0.4.0' }), 'CHECK', 'no error'],
    ['1.0.0 GC', j(base), 'GC', Code.IncompatibleVersion],
    ['1.1.0 GC', j({ ...base, cniVersion: '1.1.0' }), 'GC', 'no error'],
    ['1.0.0 STATUS', j(base), 'STATUS', Code.IncompatibleVersion],
    ['relative socket', j({ ...base, socket: 'trellisd.sock' }), 'ADD', Code.InvalidConfig],
    ['timeout 0', j({ ...base, timeoutMs: 0 }), 'ADD', Code.InvalidConfig],
    ['timeout 1.5', j({ ...base, timeoutMs: 1.5 }), 'ADD', Code.InvalidConfig],
    ['mtu 67', j({ ...base, mtu: 67 }), 'ADD', Code.InvalidConfig],
    ['mtu 9001', j({ ...base, mtu: 9001 }), 'ADD', 'no error'],
    ['ipam under trellis', j({ ...base, ipam: { type: 'host-local' } }), 'ADD', Code.UnsupportedField],
    ['prevResult not an object', j({ ...base, prevResult: [] }), 'CHECK', Code.InvalidConfig],
    ['attachments not a list', j({ ...base, cniVersion: '1.1.0', 'cni.dev/valid-attachments': {} }), 'GC', Code.InvalidConfig],
    ['attachment without ifname', j({ ...base, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'a' }] }), 'GC', Code.InvalidConfig],
  ];
  for (const [name, text, cmd, code] of cases) t.equal(codeOf(() => parseConf(text, cmd)), code, name);

  const main = parseConf(j({ ...base, socket: '/run/x.sock', timeoutMs: 500, mtu: 1400 }), 'ADD');
  t.match(main, { mode: 'main', socket: '/run/x.sock', timeoutMs: 500, mtu: 1400, name: 'net' });
  t.match(parseConf(j(base), 'ADD'), { socket: '/run/trellis/trellisd.sock', timeoutMs: 10_000, mtu: undefined });
  const ipam = parseConf(j({ ...base, type: 'ptp', mtu: 1400, ipam: { type: 'trellis', socket: '/s.sock', timeoutMs: 42 } }), 'ADD');
  t.match(ipam, { mode: 'ipam', type: 'ptp', socket: '/s.sock', timeoutMs: 42, mtu: undefined }, 'IPAM mode reads its keys from ipam, leaves mtu to the main plugin');
  t.equal(codeOf(() => parseConf(j({ ...base, type: 'ptp', ipam: { type: 'trellis', socket: 'rel' } }), 'ADD')), Code.InvalidConfig);
  const gc = parseConf(j({ ...base, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] }), 'GC');
  t.same(gc.validAttachments, [{ containerId: 'c1', ifName: 'eth0' }]);
  const legacyKey = parseConf(j({ ...base, cniVersion: '1.1.0', 'cni.dev/attachments': [{ containerID: 'c2', ifname: 'net1' }] }), 'GC');
  t.same(legacyKey.validAttachments, [{ containerId: 'c2', ifName: 'net1' }], 'the older key libcni also sends');
});

t.test('formatResult and formatError', async (t) => {
  const own = {
    interfaces: [
      { name: 'trl0', mac: 'ee:00:00:00:00:01', mtu: 1400 },
      { name: 'eth0', mac: '0a:00:00:00:00:01', mtu: 1400, sandbox: '/ns' },
    ],
    ips: [{ address: '100.96.0.5/32', gateway: '169.254.1.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
  };
  t.same(formatResult('1.1.0', own, undefined), { cniVersion: '1.1.0', interfaces: own.interfaces, ips: own.ips, routes: own.routes, dns: {} });
  const v100 = formatResult('1.0.0', own, undefined);
  t.same((v100.interfaces as Array<Record<string, unknown>>).map((i) => i.mtu), [undefined, undefined], 'no interface mtu before 1.1.0');
  t.same(formatResult('0.4.0', own, undefined).ips, [{ version: '4', address: '100.96.0.5/32', gateway: '169.254.1.1', interface: 1 }]);
  const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'lo0' }], ips: [{ address: '10.0.0.1/8', interface: 0 }], routes: [], dns: { nameservers: ['10.0.0.53'] } };
  const merged = formatResult('1.0.0', own, prev);
  t.equal((merged.interfaces as unknown[]).length, 3, 'prevResult interfaces first');
  t.same((merged.ips as Array<{ interface: number }>).map((i) => i.interface), [0, 2], 'our index shifted past them');
  t.same(merged.dns, prev.dns, 'DNS of prevResult kept');
  const ipamOnly = formatResult('1.0.0', { interfaces: [], ips: [{ address: '100.96.0.5/32' }], routes: [] }, undefined);
  t.same(Object.keys(ipamOnly).sort(), ['cniVersion', 'dns', 'ips', 'routes'], 'IPAM result has no interfaces');

  t.same(JSON.parse(formatError(new CniError(7, 'bad', 'why'), '0.4.0')), { cniVersion: '0.4.0', code: 7, msg: 'bad', details: 'why' });
  t.equal(JSON.parse(formatError(new CniError(1, 'old'), '0.3.1')).cniVersion, '1.1.0', 'an unsupported version is answered in 1.1.0');
});

t.test('veth names and MACs', async (t) => {
  const a = vethNames('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'eth0');
  t.match(a.host, /^trl[0-9a-f]{11}$/);
  t.ok(a.host.length <= 15, 'fits IFNAMSIZ');
  t.same(vethNames('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'eth0'), a, 'stable');
  t.not(vethNames('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'net1').host, a.host, 'another interface, another veth');
  for (const mac of [a.hostMac, a.podMac]) {
    t.match(mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const first = parseInt(mac.slice(0, 2), 16);
    t.equal(first & 1, 0, `${mac} is unicast`);
    t.equal(first & 2, 2, `${mac} is locally administered`);
  }
  const names = new Set(Array.from({ length: 20_000 }, (_, i) => vethNames(`container-${i}`, 'eth0').host));
  t.equal(names.size, 20_000, 'no collision among 20,000 container ids');
  t.equal(hash64(''), hash64(''));
  t.not(hash64('ab'), hash64('ba'));
  t.equal(vethAlias('net', 'c1', 'eth0'), 'trellis/net/c1/eth0');
});

t.test('q quotes for ip -batch', async (t) => {
  t.equal(q('eth0'), 'eth0');
  t.equal(q('trellis/net/c1/eth0'), 'trellis/net/c1/eth0');
  t.equal(q('eth#0'), '"eth#0"');
  t.equal(q('a"b'), "'a\"b'");
  t.throws(() => q(`a"b'c`), { code: Code.InvalidEnvironment });
});

t.test('classify', async (t) => {
  const out = (stderr: string, failedCommand?: string) => ({ ok: false, stdout: '', stderr, failedCommand });
  t.match(classify(out('ip: not found'), 'x', undefined), { code: Code.ToolMissing });
  t.match(classify(out("nsenter: reassociate to namespace 'ns/net' failed: Invalid argument"), 'pod', '/p'), {
    code: Code.NetnsUnusable,
    message: "pod: cannot enter network namespace /p: reassociate to namespace 'ns/net' failed: Invalid argument",
  });
  t.match(classify(out('RTNETLINK answers: File exists\nCommand failed -:1', 'link add name eth0'), 'pod', '/p'), {
    code: Code.KernelRefused,
    message: 'pod: RTNETLINK answers: File exists (ip link add name eth0)',
  });
});

t.test('staleVeths', async (t) => {
  const link = (cid: string, ifName: string, network = 'net', over: Record<string, unknown> = {}) => ({
    ifname: vethNames(cid, ifName).host,
    ifalias: vethAlias(network, cid, ifName),
    ...over,
  });
  const links = [
    link('keep', 'eth0'),
    link('gone', 'eth0'),
    link('other', 'eth0', 'other-net'),
    link('renamed', 'eth0', 'net', { ifname: 'trl00000000000' }),
    link('noalias', 'eth0', 'net', { ifalias: undefined }),
    link('foreign', 'eth0', 'net', { ifname: 'veth1234' }),
    { ifname: 'trlzzz', ifalias: 'trellis/net/x' },
  ];
  t.same(staleVeths(links, 'net', new Set(['keep\u0000eth0'])), [vethNames('gone', 'eth0').host], 'only our own, of this network, not valid');
});

t.test('the plugin imports only node built-ins and its own modules', async (t) => {
  const dir = join(ROOT, 'cni-plugin');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const text = readFileSync(join(dir, file), 'utf8');
    const specifiers = [...text.matchAll(/(?:^import(?! type)|^export)[^'"]*from '([^']+)'|import\('([^']+)'\)/gm)].map((m) => m[1] ?? m[2]!);
    const typeOnly = [...text.matchAll(/^import type [^'"]*from '([^']+)'/gm)].map((m) => m[1]!);
    t.ok(specifiers.length + typeOnly.length > 0, `${file} imports something`);
    t.same(specifiers.filter((s) => !s.startsWith('node:') && !/^\.\/[a-z-]+\.js$/.test(s)), [], `${file}: only node: and ./ imports`);
    t.same(typeOnly.filter((s) => !/^\.\/[a-z-]+\.js$/.test(s) && s !== '../src/gen/trellis/v1/ipam_api_pb.js'), [], `${file}: type-only imports of its own modules or of the generated API types`);
  }
  const bundle = readFileSync(join(ROOT, 'dist', 'cni', 'trellis.cjs'), 'utf8');
  t.notMatch(bundle, /@bufbuild|file_trellis_v1_ipam_api|AllocateResponseSchema/, 'the bundle holds no protobuf runtime and no generated code (the API types are erased)');
  t.match(readFileSync(join(dir, 'trellis.ts'), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the entry is an executable script');
});
