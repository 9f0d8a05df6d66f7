// The bgp.* configuration keys: defaults, a YAML file with peers, and the
// problems reported for bad values (all together, secrets masked).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { describeConfig, loadConfig } from '../../src/config/load.js';
import { parseBgpPeer } from '../../src/config/bgp-config.js';
import { ErrorCode, TrellisError } from '../../src/errors.js';

const base = new Map([
  ['hostIP', '198.18.1.10'],
  ['interface', 'eth0'],
  ['nodeName', 'n1'],
]);

function problemsOf(f: () => unknown): string[] {
  try {
    f();
  } catch (err) {
    if (err instanceof TrellisError && err.code === ErrorCode.Config) return (err.details as { problems: string[] }).problems;
    throw err;
  }
  return [];
}

t.test('defaults: BGP off, nothing required', async (t) => {
  const c = loadConfig({ flags: base, env: {} });
  t.match(c.bgp, { enabled: false, mode: 'exporter', asn: undefined, peers: [], communities: [], gobgpd: '/usr/bin/gobgpd', listenPort: 179, restartTime: 120_000 });
});

t.test('a YAML file with peers and communities', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bgp-'));
  const file = join(dir, 'trellisd.yaml');
  writeFileSync(
    file,
    [
      'bgp:',
      '  enabled: true',
      '  mode: tor',
      '  asn: 65010',
      '  peers:',
      '    - 198.18.1.1 asn=65000 maxPrefixes=3 holdTime=6s password=s3cret',
      '    - 198.18.2.1 asn=65000 multihop=2 multipath=4',
      '  communities: [65010:7]',
      '',
    ].join('\n'),
  );
  const c = loadConfig({ file, flags: base, env: {} });
  t.equal(c.bgp.mode, 'tor');
  t.equal(c.bgp.asn, 65010);
  t.same(c.bgp.communities, ['65010:7']);
  t.same(parseBgpPeer(c.bgp.peers[0]!), { address: '198.18.1.1', asn: 65000, maxPrefixes: 3, holdTime: 6, multihop: 0, password: 's3cret', multipath: 1 });
  t.same(parseBgpPeer(c.bgp.peers[1]!), { address: '198.18.2.1', asn: 65000, maxPrefixes: 100, holdTime: 9, multihop: 2, password: '', multipath: 4 });
  const shown = JSON.stringify(describeConfig(c));
  t.notMatch(shown, /s3cret/, 'the password is masked');
  t.match(shown, /password=\*\*\*\*\*\*\*\*/);
});

t.test('every problem is reported at once, clearly, without the password', async (t) => {
  const flags = new Map([
    ...base,
    ['bgp.enabled', 'true'],
    ['bgp.mode', 'spine'],
    ['bgp.routerId', 'router-1'],
    ['bgp.peers', '198.18.1.1 asn=65000 maxPrefixes=0 password=hunter2,not-an-ip asn=1,198.18.1.2 asn=65000 colour=red,198.18.1.3 asn=65000 holdTime=2s'],
    ['bgp.communities', '65000:70000'],
    ['bgp.apiListen', '0.0.0.0:50051'],
  ]);
  const problems = problemsOf(() => loadConfig({ flags, env: {} }));
  const text = problems.join('\n');
  t.match(text, /bgp\.mode must be exporter or tor, got "spine"/);
  t.match(text, /bgp\.asn is required/);
  t.match(text, /bgp\.routerId must be an IPv4 address/);
  t.match(text, /maxPrefixes must be a whole number in 1\.\.1000000, got "0"/);
  t.match(text, /"not-an-ip" is not an IP address/);
  t.match(text, /unknown option colour/);
  t.match(text, /holdTime must be whole seconds in 3\.\.65535/);
  t.match(text, /bgp\.communities: "65000:70000"/);
  t.match(text, /bgp\.apiListen must be a loopback host:port/);
  t.notMatch(text, /hunter2/, 'no password in messages');
});

t.test('a peer without asn is refused; duplicates are refused', async (t) => {
  t.throws(() => parseBgpPeer('198.18.1.1'), /asn= is required/);
  const flags = new Map([...base, ['bgp.enabled', 'true'], ['bgp.asn', '65010'], ['bgp.peers', '198.18.1.1 asn=1,198.18.1.1 asn=2']]);
  t.match(problemsOf(() => loadConfig({ flags, env: {} })).join('\n'), /198\.18\.1\.1 is listed twice/);
  const none = new Map([...base, ['bgp.enabled', 'true'], ['bgp.asn', '65010']]);
  t.match(problemsOf(() => loadConfig({ flags: none, env: {} })).join('\n'), /at least one peer/);
});
