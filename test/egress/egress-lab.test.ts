// Egress masquerade on a real kernel (daemon/egress.ts, src/core/egress.ts):
// a cluster lab subnet with two hosts, a pod on each, and an "internet"
// namespace behind the router that knows a route to the hosts but none to the
// pods. Off by default on a plain host: the pod's ping to the internet gets no
// answer. Set on: the pod reaches it, seen from the host IP, while pod-to-pod
// traffic across hosts keeps the pod's source address. With the internet's
// CIDR in egress.nonMasqueradeCidrs the table is replaced and the ping fails
// again. A table deleted behind trellisd's back is put back. `trellisd
// --withdraw` removes the table. A table the test made
// itself (`ip other`) is the same, handles included, at every step.
import t from 'tap';
import { buildClusterLab } from '../../lab/cluster-lab.js';
import { needRoot, type NsRef } from '../../lab/netns.js';
import { until } from '../../lab/pids.js';
import { bin, daemon } from '../../lab/trellis.js';

const skip = needRoot();
const INTERNET = '198.19.0.2';
const OTHER = `table ip other {
  set keep {
    type ipv4_addr
    elements = { 198.18.9.9 }
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    ip daddr @keep drop
  }
}
`;

t.test('pod egress through SNAT, pod-to-pod untranslated, only its own table', { skip }, async (t) => {
  const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: 2 });
  const { lab } = cluster;
  const [h0, h1] = [cluster.host('h1-0'), cluster.host('h1-1')];
  const nft = (ns: NsRef, args: string[], input?: string): Promise<string> =>
    input === undefined ? lab.exec(ns, 'nft', args) : lab.exec(ns, 'sh', ['-c', `printf '%s' "$1" | nft -f -`, 'sh', input]);
  const hasTable = async (ns: NsRef, name: string): Promise<boolean> =>
    nft(ns, ['list', 'table', 'ip', name]).then(() => true, () => false);
  /** Packets counted by the rule of `table ip <table>` whose text contains `match`. */
  const counted = async (ns: NsRef, table: string, match: string): Promise<number> => {
    const out = await nft(ns, ['list', 'table', 'ip', table]);
    const line = out.split('\n').find((l) => l.includes(match));
    const m = line === undefined ? null : /counter packets (\d+)/.exec(line);
    if (m === null) throw new Error(`no counted rule "${match}" in table ip ${table}:\n${out}`);
    return Number(m[1]);
  };

  // The internet: behind the router, a route back to the hosts' subnet, none to the pods.
  const internet = await lab.ns('internet');
  await lab.veth(cluster.router, 'inet0', internet, 'eth0');
  await lab.addr(cluster.router, 'inet0', '198.19.0.1/24');
  await lab.addr(internet, 'eth0', `${INTERNET}/24`);
  await lab.exec(internet, 'ip', ['route', 'add', '198.18.0.0/16', 'via', '198.19.0.1']);
  // Loose reverse-path checks, so that a request from a pod arrives (and is counted) and only its answer is lost.
  await lab.exec(internet, 'sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0']);
  await nft(internet, [], `table ip seen {
  chain input { type filter hook input priority 0; policy accept;
    ip saddr ${h0.hostIP} counter comment "from-host"
    ip saddr 100.64.0.0/10 counter comment "from-pods"
  }
}
`);
  t.same(await cluster.ping(h0, INTERNET, { count: 1 }), { sent: 1, received: 1 }, 'the host reaches the internet');

  await nft(h0.ns, [], OTHER);
  const other = await nft(h0.ns, ['-a', 'list', 'table', 'ip', 'other']);
  const otherUntouched = async (when: string): Promise<void> => {
    t.equal(await nft(h0.ns, ['-a', 'list', 'table', 'ip', 'other']), other, `table ip other untouched ${when}`);
  };

  // Default on a plain host (no VPC): off.
  await cluster.startDaemons();
  const podA = await cluster.addPod(h0);
  const podB = await cluster.addPod(h1);
  t.notOk(await hasTable(h0.ns, 'trellis'), 'plain host: no table ip trellis');
  t.match(await lab.exec(h0.ns, 'curl', ['-s', 'http://127.0.0.1:9653/metrics']), /^trellis_egress_masquerade 0$/m, 'metric: off');
  t.same(await cluster.ping(podA.ns, INTERNET, { count: 2 }), { sent: 2, received: 0 }, 'without masquerade the internet cannot answer the pod');
  t.equal(await counted(internet, 'seen', 'from-pods'), 2, 'the requests arrived with the pod address as source');
  await otherUntouched('with masquerade off');

  // Masquerade on: the same host's daemon restarted, keeping its state (lease, blocks).
  await h0.daemon.stop();
  const on = daemon(t, { ...h0.daemon.options, stateDir: h0.daemon.stateDir, args: ['--egress-masquerade', 'true', '--routes-resync-interval', '1s'] });
  await on.start();
  await until('table ip trellis', () => hasTable(h0.ns, 'trellis'));
  const table = await nft(h0.ns, ['list', 'table', 'ip', 'trellis']);
  t.match(table, /ip saddr 100\.96\.0\.0\/16 ip daddr != @untranslated counter packets \d+ bytes \d+ snat to 198\.18\.1\.10/, 'the SNAT rule');
  t.match(table, /elements = \{ 100\.96\.0\.0\/16 \}/, 'no VPC: only the pod network is left untranslated');
  let ready = '';
  await until('h1-0 ready', async () => (ready = await lab.exec(h0.ns, 'curl', ['-s', 'http://127.0.0.1:9653/readyz'])).startsWith('ready'));
  t.match(ready, /^ready\negress: masquerade on \(egress\.masquerade is set to true\); untranslated destinations 100\.96\.0\.0\/16; rule: ip saddr 100\.96\.0\.0\/16 ip daddr != @untranslated counter snat to 198\.18\.1\.10\n$/, '/readyz says what is in effect');
  t.match(await lab.exec(h0.ns, 'curl', ['-s', 'http://127.0.0.1:9653/metrics']), /^trellis_egress_masquerade 1$/m, 'metric: on');

  const fromHost = await counted(internet, 'seen', 'from-host');
  t.same(await cluster.ping(podA.ns, INTERNET, { count: 2 }), { sent: 2, received: 2 }, 'with masquerade the pod reaches the internet');
  t.equal(await counted(internet, 'seen', 'from-host'), fromHost + 2, 'seen from the host IP');
  t.equal(await counted(internet, 'seen', 'from-pods'), 2, 'no new request with a pod source');
  t.ok((await counted(h0.ns, 'trellis', 'snat to')) >= 1, 'the rule counted the translated flow');

  // Drift: a table deleted behind trellisd's back comes back at the next check.
  await nft(h0.ns, ['delete', 'table', 'ip', 'trellis']);
  await until('table ip trellis back', () => hasTable(h0.ns, 'trellis'));
  await on.waitForLog('went missing: installing it again');
  t.same(await cluster.ping(podA.ns, INTERNET, { count: 1 }), { sent: 1, received: 1 }, 'egress works again after the repair');

  // Pod to pod across hosts: never translated.
  await nft(podB.ns, [], `table ip seen {
  chain input { type filter hook input priority 0; policy accept;
    ip saddr ${podA.address} counter comment "from-pod-a"
    ip saddr ${h0.hostIP} counter comment "from-host"
  }
}
`);
  await until(`route to ${podB.address} on h1-0`, async () => (await cluster.ping(podA.ns, podB.address, { count: 1 })).received === 1);
  const before = await counted(h0.ns, 'trellis', 'snat to');
  const seenA = await counted(podB.ns, 'seen', 'from-pod-a');
  t.same(await cluster.ping(podA.ns, podB.address, { count: 3 }), { sent: 3, received: 3 }, 'pod A reaches pod B on the other host');
  t.equal(await counted(podB.ns, 'seen', 'from-pod-a'), seenA + 3, 'pod B sees pod A\'s address');
  t.equal(await counted(podB.ns, 'seen', 'from-host'), 0, 'never the host address');
  t.equal(await counted(h0.ns, 'trellis', 'snat to'), before, 'the SNAT rule matched none of it');
  await otherUntouched('with masquerade on');

  // The internet's CIDR listed as not to be translated: the table is replaced, the ping fails again.
  await on.stop();
  t.ok(await hasTable(h0.ns, 'trellis'), 'a graceful stop leaves the table (pods keep their egress across a restart)');
  const noMasq = daemon(t, { ...h0.daemon.options, stateDir: h0.daemon.stateDir, args: ['--egress-masquerade', 'true', '--egress-non-masquerade-cidrs', '198.19.0.0/24,198.18.0.0/24'] });
  await noMasq.start('egress masquerade on');
  t.match(await nft(h0.ns, ['list', 'table', 'ip', 'trellis']), /elements = \{ 100\.96\.0\.0\/16, 198\.18\.0\.0\/24,\s+198\.19\.0\.0\/24 \}/, 'table replaced with the new set');
  t.same(await cluster.ping(podA.ns, INTERNET, { count: 2 }), { sent: 2, received: 0 }, 'traffic to a non-masquerade CIDR leaves untranslated, and gets no answer');
  await otherUntouched('after the table was replaced');

  // Withdraw: the table goes, the other stays.
  await noMasq.stop();
  const o = h0.daemon.options;
  await lab.exec(h0.ns, process.execPath, [bin('daemon/trellisd'), '--withdraw', '--node-name', o.nodeName, '--host-ip', o.hostIP, '--interface', 'eth0',
    '--etcd-endpoints', o.etcd, '--state-dir', h0.daemon.stateDir, '--hold-time', o.holdTime ?? '3s']);
  t.notOk(await hasTable(h0.ns, 'trellis'), 'withdraw removed table ip trellis');
  await otherUntouched('after withdraw');
  t.same(await cluster.ping(podA.ns, INTERNET, { count: 1 }), { sent: 1, received: 0 }, 'no SNAT after withdraw');
});
