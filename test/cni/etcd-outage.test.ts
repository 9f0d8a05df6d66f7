// The CNI plugin and /readyz while etcd does not answer (paused: SIGSTOP, as
// a hung or partitioned etcd; stopped: connection refused). ADD and DEL must
// answer 11 (try again later), within the plugin's own timeout (so never 100,
// "trellisd unreachable", and never 106, which a runtime does not retry);
// /readyz must turn 503 naming the lost lease, and everything must work again
// once etcd is back.

import t from 'tap';
import { request } from 'node:http';
import { needRoot } from '../../lab/netns.js';
import { cniNode, invoke, type Outcome } from '../../lab/cni-harness.js';
import { until } from '../../lab/pids.js';

const skip = needRoot();

function readyz(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz', timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('/readyz: no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

t.test('etcd not answering: ADD and DEL say try again later, /readyz names the lost lease', { skip }, async (t) => {
  const node = await cniNode(t, { nodeName: 'cni-outage', hostIP: '198.18.1.62' });
  const { lab, host, path, socket, etcd, daemon: d } = node;
  const port = d.httpPort();
  // The plugin gives trellisd 4 s; trellisd must answer (11) before that, or the plugin says 100.
  const conf = { cniVersion: '1.1.0', name: 'trellis', type: 'trellis', socket, timeoutMs: 4_000 };
  const cni = async (command: 'ADD' | 'DEL', containerId: string): Promise<Outcome> => {
    const netns = command === 'ADD' ? `/var/run/netns/${(await lab.ns()).name}` : undefined;
    return invoke({ command, hostNs: host.name, containerId, netns, path, config: conf });
  };
  /** As a runtime does: retry while the plugin says 11 (bounded); the last outcome. */
  const retried = async (command: 'ADD' | 'DEL', containerId: string): Promise<Outcome> => {
    let out = await cni(command, containerId);
    for (let i = 0; i < 40 && out.code !== 0 && (out.json as { code?: number } | undefined)?.code === 11; i++) {
      await new Promise((r) => setTimeout(r, 500));
      out = await cni(command, containerId);
    }
    return out;
  };
  const before = await cni('ADD', 'before-outage');
  t.equal(before.code, 0, `ADD works while etcd answers: ${before.stdout}`);

  t.test('etcd paused', async (t) => {
    etcd.pause();
    t.teardown(() => etcd.resume());
    const add = await cni('ADD', 'during-pause');
    t.match(add.json, { code: 11, msg: /etcd/ }, `ADD: try again later, saying why (${Math.round(add.ms)} ms): ${add.stdout}`);
    const del = await cni('DEL', 'before-outage');
    t.match(del.json, { code: 11, msg: /etcd/ }, `DEL: try again later (${Math.round(del.ms)} ms): ${del.stdout}`);
    await until('/readyz 503 once the lease is lost', async () => (await readyz(port)).status === 503, 20_000, 100);
    t.match((await readyz(port)).body, /^not ready: .*lease/, '/readyz names the lease');
    const late = await cni('ADD', 'during-pause');
    t.match(late.json, { code: 11 }, `ADD with the lease lost: try again later (${Math.round(late.ms)} ms)`);
    etcd.resume();
    await until('/readyz 200 once etcd answers again', async () => (await readyz(port)).status === 200, 30_000, 100);
    const again = await retried('ADD', 'during-pause');
    t.equal(again.code, 0, `the retried ADD works once etcd is back: ${again.stdout}`);
    const del2 = await retried('DEL', 'before-outage');
    t.equal(del2.code, 0, `the retried DEL works: ${del2.stdout}`);
  });

  t.test('etcd stopped', async (t) => {
    await etcd.stop();
    t.teardown(() => etcd.start());
    const add = await cni('ADD', 'during-stop');
    t.match(add.json, { code: 11, msg: /etcd/ }, `ADD: try again later (${Math.round(add.ms)} ms): ${add.stdout}`);
    const del = await cni('DEL', 'during-pause');
    t.match(del.json, { code: 11, msg: /etcd/ }, `DEL: try again later (${Math.round(del.ms)} ms): ${del.stdout}`);
    await etcd.start();
    await until('/readyz 200 once etcd is back', async () => (await readyz(port)).status === 200, 30_000, 100);
    const again = await retried('ADD', 'during-stop');
    t.equal(again.code, 0, `ADD works once etcd is back: ${again.stdout}`);
  });
});
