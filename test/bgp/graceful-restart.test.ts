// Graceful restart: restarting the exporter's trellisd — and with it its
// gobgpd, killed without a NOTIFICATION and started anew — loses no packet
// of a continuous ping from the outside client to a pod of that subnet: BIRD
// keeps the routes as stale while the session is down and the new speaker
// announces the same ones. A lab of one subnet of two hosts (exporter mode).
import { spawn } from 'node:child_process';
import t from 'tap';
import { needRoot } from '../../lab/netns.js';
import { until } from '../../lab/pids.js';
import { buildBgpLab } from '../../lab/bgp-lab.js';

const skip = needRoot();

t.test('restarting trellisd and its speaker loses no packet', { skip }, async (t) => {
  const lab = await buildBgpLab(t, { subnets: 1, hostsPerSubnet: 2 });
  await lab.cluster.startDaemons(undefined, undefined, 60_000);
  await until('both prefixes in BIRD', async () => (await lab.routes()).length === 2, 90_000, 500);
  const want = JSON.stringify(await lab.routes());
  const exporterName = await lab.exporterOf('subnet-1');
  t.ok(exporterName !== undefined, 'an exporter announces');
  const exporter = lab.cluster.host(exporterName as string);
  const pods = await Promise.all(lab.cluster.hosts.map((h) => lab.cluster.addPod(h)));
  for (const p of pods) t.equal((await lab.cluster.ping(lab.client, p.address, { count: 2 })).received, 2, `${p.address} reachable before`);

  // One ping per pod, every 100 ms, until the restart is over and the table is back.
  const pings = pods.map((p) => {
    // -O reports every request left unanswered when the next one goes out; the
    // last request, in flight when ping is stopped, is not a loss.
    const child = spawn('ip', ['netns', 'exec', lab.client.name, 'ping', '-n', '-O', '-i', '0.1', p.address], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const done = new Promise<{ replies: number; lost: number[] }>((resolve) =>
      child.once('exit', () => {
        const answered = new Set([...out.matchAll(/icmp_seq=(\d+) ttl=/g)].map((m) => Number(m[1])));
        const unanswered = [...out.matchAll(/no answer yet for icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
        resolve({ replies: answered.size, lost: [...new Set(unanswered)].filter((seq) => !answered.has(seq)) });
      }),
    );
    return { child, done };
  });
  try {
    await new Promise((r) => setTimeout(r, 1000));
    await exporter.daemon.stop();
    t.ok((await lab.routes()).length === 2, "BIRD still holds both routes while the exporter's speaker is gone");
    await exporter.daemon.start('cluster view synced', 60_000);
    await until('the session is back', async () => (await lab.establishedSessions()) === 2, 90_000, 200);
    await until('the table is back', async () => JSON.stringify(await lab.routes()) === want, 90_000, 200);
    await new Promise((r) => setTimeout(r, 3000));
  } finally {
    for (const p of pings) p.child.kill('SIGINT');
  }
  for (const [i, p] of pings.entries()) {
    const r = await p.done;
    t.ok(r.replies > 20, `${pods[i]!.address}: ${r.replies} echo replies`);
    t.same(r.lost, [], `${pods[i]!.address}: no packet lost across the restart`);
  }
});
