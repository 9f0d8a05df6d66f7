// Tests of bench/lib/h2-scan.ts, the frame scanner behind bench/scale's exact
// "bytes per foreign pod ADD": against a real etcd, a client watching one
// prefix through a proxy that feeds what etcd sends into the scanner; records
// the client receives are found, records it does not receive are not, and
// frames cut at any byte boundary are reassembled.

import t from 'tap';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../lab/etcd.js';
import { H2Scan } from '../../bench/lib/h2-scan.js';
import { tapRelay } from '../../bench/lib/tap-relay.js';

async function scanningProxy(port: number, needle: () => string | undefined, chunk: number): Promise<{ port: number; scans: H2Scan[]; close: () => Promise<void> }> {
  const scans: H2Scan[] = [];
  const relay = await tapRelay(port, () => {
    const scan = new H2Scan(needle);
    scans.push(scan);
    // Fed in small pieces: frames and keys straddle the pieces.
    return (d) => {
      for (let i = 0; i < d.length; i += chunk) scan.push(d.subarray(i, i + chunk));
    };
  });
  return { port: relay.port, scans, close: () => relay.close() };
}

for (const chunk of [7, 65536]) {
  t.test(`records a watch delivers are counted, others not (pieces of ${chunk} bytes)`, async (t) => {
    const etcd = await startEtcd(t);
    const writer = new Etcd3({ hosts: etcd.endpoint });
    t.teardown(() => writer.close());
    let needle: string | undefined;
    const proxy = await scanningProxy(Number(new URL(etcd.endpoint).port), () => needle, chunk);
    t.teardown(() => proxy.close());
    const reader = new Etcd3({ hosts: `http://127.0.0.1:${proxy.port}` });
    t.teardown(() => reader.close());
    const seen: string[] = [];
    const watcher = await reader.watch().prefix('/watched/').create();
    watcher.on('put', (kv) => seen.push(kv.key.toString()));
    const matched = (): number => proxy.scans.reduce((a, s) => a + s.matchedFrames, 0);

    needle = '/other/node-a/';
    for (let i = 0; i < 20; i++) await writer.put(`/other/node-a/${i}`).value('x'.repeat(100));
    await writer.put('/watched/fence-1').value('x');
    while (!seen.includes('/watched/fence-1')) await new Promise((r) => setTimeout(r, 10));
    t.equal(matched(), 0, 'keys the client never receives are never found');

    needle = '/watched/node-b/';
    for (let i = 0; i < 20; i++) await writer.put(`/watched/node-b/${i}`).value('y'.repeat(100));
    while (!seen.includes('/watched/node-b/19')) await new Promise((r) => setTimeout(r, 10));
    t.ok(matched() >= 1, `watched keys are found (${matched()} frames)`);
    t.ok(proxy.scans.reduce((a, s) => a + s.matchedBytes, 0) >= 20 * 100, 'their bytes are counted');
    await watcher.cancel();
  });
}
