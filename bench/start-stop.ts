// bench/start-stop: how long trellisd takes from exec to ready, and from
// SIGTERM to exit, with a large cluster in etcd. One etcd on loopback holds a
// topology, N node records, N block records and N advertisements (N = 5,000
// by default); one trellisd (routes off, HTTP on an ephemeral loopback port)
// is started and stopped R times. Ready is the first 200 from /readyz
// (polled every 5 ms); exit is the process's exit event. Prints numbers;
// asserts nothing.
//
// Run:          npm run build && node dist/bench/start-stop.js
// Environment:  BENCH_NODES (N, default 5000), BENCH_RUNS (R, default 5),
// BENCH_VERBOSE=1 (print the last run's log with times since exec),
// BENCH_PROFILE_DIR (write a CPU profile of each trellisd run there).

import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../lab/etcd.js';
import { bin, seedTopology } from '../lab/trellis.js';
import { delay } from '../lab/pids.js';
import { AdvertisementSchema, BlockSchema, NodeSchema } from '../src/gen/trellis/v1/records_pb.js';
import { Keys } from '../src/state/keys.js';
import { encodeRecord, makeRecord, msToTimestamp } from '../src/state/records.js';
import { percentile } from './lib/report.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const NODES = Number(process.env.BENCH_NODES ?? 5000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SUBNETS = 25; // 198.18.<i>.0/24, 250 hosts each
const print = (line: string): void => void process.stdout.write(`${line}\n`);

function topologyYaml(): string {
  const subnets = Array.from({ length: SUBNETS }, (_, i) => `      - { id: subnet-${i}, cidr: 198.18.${i}.0/24 }`).join('\n');
  return `network: 100.64.0.0/10\nblockSize: 26\nsubnetSize: 16\nzones:\n  - name: zone-a\n    subnets:\n${subnets}\n`;
}

function readyz(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function main(): Promise<void> {
  const etcd = await startEtcd();
  try {
    const topology = await seedTopology(etcd.endpoint, topologyYaml());
    const keys = new Keys();
    const client = new Etcd3({ hosts: etcd.endpoint });
    const writes: Array<() => Promise<unknown>> = [];
    for (let k = 0; k < NODES; k++) {
      const s = k % SUBNETS;
      const subnet = topology.zones[0]?.subnets[s];
      if (subnet === undefined) throw new Error('no subnet');
      const name = `peer-${k}`;
      const hostIp = `198.18.${s}.${10 + Math.floor(k / SUBNETS)}`;
      // The second /26 of each /16 pod prefix onwards: block j of subnet s.
      const j = 1 + Math.floor(k / SUBNETS);
      const base = subnet.podPrefix.addr + BigInt(j * 64);
      const prefix = `${[24, 16, 8, 0].map((sh) => Number((base >> BigInt(sh)) & 255n)).join('.')}/26`;
      writes.push(() => client.put(keys.node(name)).value(encodeRecord(NodeSchema, makeRecord(NodeSchema, { name, subnet: subnet.id, zone: 'zone-a', hostIp, startedAt: msToTimestamp(Date.now()) }))).exec());
      writes.push(() => client.put(keys.block(prefix)).value(encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix, subnet: subnet.id, node: name, claimedAt: msToTimestamp(Date.now()) }))).exec());
      writes.push(() => client.put(keys.route(subnet.id, name)).value(encodeRecord(AdvertisementSchema, makeRecord(AdvertisementSchema, { node: name, subnet: subnet.id, nextHop: hostIp, prefixes: [prefix] }))).exec());
    }
    for (let i = 0; i < writes.length; i += 200) await Promise.all(writes.slice(i, i + 200).map((w) => w()));
    client.close();
    print(`etcd holds ${NODES} nodes, ${NODES} blocks, ${NODES} advertisements`);

    const state = mkdtempSync(join(tmpdir(), 'trellis-bench-startstop-'));
    const toReady: number[] = [];
    const toExit: number[] = [];
    try {
      for (let r = 0; r < RUNS; r++) {
        const t0 = performance.now();
        const prof = process.env.BENCH_PROFILE_DIR; // a CPU profile of each run, for looking at where start-up goes
        const child = spawn(process.execPath, [
          ...(prof === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${prof}`]),
          bin('daemon/trellisd'), '--node-name', 'bench-self', '--host-ip', '198.18.0.250', '--interface', 'eth0',
          '--etcd-endpoints', etcd.endpoint, '--hold-time', '10s', '--state-dir', state, '--ipam-socket', join(state, 'trellisd.sock'),
          '--routes-enabled', 'false', '--http-listen', '127.0.0.1:0',
        ], { stdio: ['ignore', 'pipe', 'inherit'] });
        let port = 0;
        let logs = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          logs += d;
          const m = /"port":(\d+),"msg":"HTTP endpoint listening"/.exec(logs);
          if (m !== null) port = Number(m[1]);
        });
        const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
        for (;;) {
          if (child.exitCode !== null) throw new Error(`trellisd exited:\n${logs.slice(-2000)}`);
          if (port !== 0 && (await readyz(port)) === 200) break;
          await delay(5);
        }
        toReady.push(performance.now() - t0);
        await delay(200); // let the log catch up
        if (r === RUNS - 1 && process.env.BENCH_VERBOSE === '1') {
          const wall = Date.now() - (performance.now() - t0);
          for (const line of logs.split('\n').filter(Boolean)) {
            const rec = JSON.parse(line) as { time: number; msg: string; reason?: string };
            print(`  +${String(rec.time - Math.round(wall)).padStart(5)} ms  ${rec.msg}${rec.reason === undefined ? '' : `: ${rec.reason}`}`);
          }
        }
        await delay(200);
        const t1 = performance.now();
        child.kill('SIGTERM');
        await exited;
        toExit.push(performance.now() - t1);
      }
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
    const show = (xs: number[]): string => `p50 ${percentile(xs, 0.5).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
    print(`exec to ready (/readyz 200): ${show(toReady)}`);
    print(`SIGTERM to exit:             ${show(toExit)}`);
  } finally {
    await etcd.stop();
  }
}

await main();
