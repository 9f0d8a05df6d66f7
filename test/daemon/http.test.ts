// trellisd's HTTP endpoint against a real etcd and a real daemon process:
// /healthz answers 200 as long as the process runs, even while etcd is down;
// /readyz answers 503 with the reason until the first full sync from etcd,
// then 200; unknown paths are 404 and other methods 405. Routes are disabled
// (no namespace needed), so readiness is the etcd sync alone.
import t from 'tap';
import { request } from 'node:http';
import { startEtcd } from '../../lab/etcd.js';
import { daemon, seedTopology, type Daemon } from '../../lab/trellis.js';
import { until } from '../../lab/pids.js';

interface Reply {
  status: number;
  body: string;
}

function get(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** The port trellisd bound (it is started with --http-listen 127.0.0.1:0), from its log line. */
function httpPort(d: Daemon): number {
  for (const line of d.logs.split('\n')) {
    if (!line.startsWith('{')) continue;
    const rec = JSON.parse(line) as { msg?: string; port?: number };
    if (rec.msg === 'HTTP endpoint listening' && typeof rec.port === 'number') return rec.port;
  }
  throw new Error(`no "HTTP endpoint listening" line with a port in the log:\n${d.logs.slice(-2000)}`);
}


t.test('/healthz, /readyz before and after the first sync from etcd, 404', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  await etcd.stop(); // trellisd starts while etcd is down: it cannot sync
  const d = daemon(t, { etcd: etcd.endpoint, nodeName: 'http-node', hostIP: '198.18.1.40' });
  await d.start('HTTP endpoint listening');
  const port = httpPort(d);
  t.ok(port > 0, `listening on 127.0.0.1:${port}`);

  await d.waitForLog('waiting for etcd'); // it has tried and failed at least once
  const health = await get(port, '/healthz');
  t.same(health, { status: 200, body: 'ok\n' }, '/healthz is 200 while etcd is down');
  const notReady = await get(port, '/readyz');
  t.equal(notReady.status, 503, '/readyz is 503 before the first sync');
  t.equal(notReady.body, 'not ready: waiting for etcd\n', 'and says what it waits for');
  t.notMatch(d.logs, /cluster view synced/, 'indeed not synced yet');
  const early = (await get(port, '/metrics')).body;
  t.notMatch(early, /\bNaN\b/, 'no NaN before the first sync');
  t.match(early, /^trellis_last_full_sync_timestamp_seconds 0$/m, 'last full sync: 0 before the first');
  t.match(early, /^trellis_ready 0$/m);

  await etcd.start(); // same port, same data (the topology is still there)
  const took = await until('/readyz 200', async () => (await get(port, '/readyz')).status === 200);
  t.pass(`/readyz became 200 ${took} ms after etcd came up`);
  // The log line travels through a pipe and may arrive just after the HTTP answer.
  await until('the log says the view synced', () => /cluster view synced/.test(d.logs), 5000, 50);
  t.match(d.logs, /cluster view synced/, 'ready means the cluster view synced');
  t.same(await get(port, '/readyz'), { status: 200, body: 'ready\n' }, '/readyz body');
  t.same(await get(port, '/healthz'), { status: 200, body: 'ok\n' }, '/healthz still 200');
  t.same(await get(port, '/readyz?verbose=1'), { status: 200, body: 'ready\n' }, 'a query string is ignored');

  const unknown = await get(port, '/nope');
  t.equal(unknown.status, 404, 'unknown path: 404');
  t.match(unknown.body, /\/healthz, \/readyz or \/metrics/, '404 names the paths there are');
  t.equal((await get(port, '/healthz', 'POST')).status, 405, 'POST: 405');

  const metrics = await get(port, '/metrics');
  t.equal(metrics.status, 200, '/metrics is 200');
  t.match(metrics.body, /^# (HELP|TYPE) /m, 'in Prometheus text format');
  t.notMatch(metrics.body, /\bNaN\b/, 'no NaN');
  t.match(metrics.body, /^trellis_build_info\{version="\d+\.\d+\.\d+[^"]*",node_version="v\d+\.\d+\.\d+"\} 1$/m, 'build info');
  t.match(metrics.body, /^process_cpu_seconds_total \d/m, 'the standard process metrics, unprefixed');
  t.match(metrics.body, /^process_resident_memory_bytes \d/m);
  t.match(metrics.body, /^nodejs_heap_size_used_bytes \d/m);
  t.notMatch(metrics.body, /^trellis_process_/m, 'no prefixed copy of them');
  t.match(metrics.body, /^# TYPE trellis_etcd_errors_total counter$/m, 'etcd errors are a counter');
  t.match(metrics.body, /^trellis_etcd_errors_total\{source="publish"\} 0$/m);
  t.match(metrics.body, /^trellis_ipam_addresses_free \d+$/m, 'IPAM usage gauges');
  const counters = [...metrics.body.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1]!);
  t.same(counters.filter((n) => !n.endsWith('_total')), [], `counters end in _total (${counters.length} counters)`);

  await d.stop();
  await t.rejects(get(port, '/healthz'), /ECONNREFUSED/, 'after the process ends nothing answers');
});

t.test('/readyz names what is wrong with the stored topology, and turns ready once a valid one is applied', async (t) => {
  const etcd = await startEtcd(t);
  const { Etcd3 } = await import('etcd3');
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  await client.put('/trellis/v1/topology').value('{"schemaVersion":1,"network":"not a prefix"}');
  const d = daemon(t, { etcd: etcd.endpoint, nodeName: 'bad-topology-node', hostIP: '198.18.1.41' });
  await d.start('HTTP endpoint listening');
  const port = httpPort(d);
  await d.waitForLog('stored topology is invalid');
  const reply = await until('/readyz names the invalid topology', async () => /invalid/.test((await get(port, '/readyz')).body));
  t.pass(`after ${reply} ms`);
  const notReady = await get(port, '/readyz');
  t.equal(notReady.status, 503);
  t.match(notReady.body, /^not ready: the topology stored in etcd is invalid: .+/, `says why: ${notReady.body.trim()}`);
  await seedTopology(etcd.endpoint);
  await until('/readyz 200 after a valid topology', async () => (await get(port, '/readyz')).status === 200);
  t.pass('ready once a valid topology is stored');
});
