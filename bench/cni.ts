// bench/cni: latency of the trellis CNI plugin's ADD and DEL, next to the
// start-up of `node -e 0` and to Debian's reference pair ptp + host-local
// (the same work in Go: a veth, a /32, a host route; IPAM in a local file).
// One run measures everything, interleaved round by round so machine noise
// falls on all of them alike, then prints p50/p99 per command, the ratio
// trellis ADD p50 / node -e 0 p50, and a breakdown of the trellis ADD path
// (including the same plugin run unbundled, as ES modules: what the bundle saves).
// Prints numbers; asserts nothing.
//
// Run as root:  npm run build && node dist/bench/cni.js
// Environment:  BENCH_RUNS (runs of each command, default 100, at least 100).
//
// Setup as in the tests: a throwaway etcd with the sample topology and a
// trellisd (routes off) serving its IPAM socket; a lab namespace plays the
// node's host namespace and one fresh namespace per pod. The measuring part
// re-runs this file inside the host namespace (`--inside`, via nsenter), so
// each plugin is spawned directly, as a runtime on that host would.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installPlugin } from '../lab/cni-harness.js';
import { startEtcd } from '../lab/etcd.js';
import { Lab, needRoot } from '../lab/netns.js';
import { daemon, seedTopology } from '../lab/trellis.js';
import { percentile, record, round } from './lib/report.js';
import { timedApiCall } from './lib/ipam-api.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const RUNS = Math.max(100, Number(process.env.BENCH_RUNS ?? 100));
const SELF = fileURLToPath(import.meta.url);

interface Plan {
  socket: string;
  /** The plugin as installed (the bundle, first line naming node). */
  plugin: string;
  /** The same plugin unbundled: dist/cni-plugin/trellis.js and the ES modules it imports. */
  modules: string;
  hostNetns: string;
  pods: string[];
  dataDir: string;
}

interface Ran {
  ms: number;
  code: number | null;
  stdout: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ ms: performance.now() - started, code, stdout }));
    child.stdin.end(stdin);
  });
}

/** Execs `exe` (a plugin, or node with the plugin's file) as a runtime does. */
function cni(exe: string | [string, string], command: string, containerId: string, netns: string, config: unknown): Promise<Ran> {
  const env = {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netns,
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${containerId}`,
  };
  const [cmd, args] = typeof exe === 'string' ? [exe, []] : [exe[0], [exe[1]]];
  return run(cmd, args, env, JSON.stringify(config));
}

function must(what: string, r: Ran): number {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stdout}`);
  return r.ms;
}

async function inside(plan: Plan): Promise<void> {
  const trellisConf = { cniVersion: '1.0.0', name: 'trellis', type: 'trellis', socket: plan.socket };
  const ptpConf = {
    cniVersion: '1.0.0',
    name: 'ptpbench',
    type: 'ptp',
    ipam: { type: 'host-local', ranges: [[{ subnet: '100.127.0.0/24' }]], dataDir: plan.dataDir },
  };
  const t: Record<string, number[]> = {};
  const add = (k: string, v: number): void => void (t[k] ??= []).push(v);
  const env = { PATH: process.env.PATH };
  const node = process.execPath;
  // Warm the page cache and trellisd once before measuring.
  await run(node, ['-e', '0'], env);
  const spare = plan.pods[3 * RUNS]!;
  must('warm-up ADD', await cni(plan.plugin, 'ADD', 'warm', spare, trellisConf));
  must('warm-up DEL', await cni(plan.plugin, 'DEL', 'warm', spare, trellisConf));

  for (let i = 0; i < RUNS; i++) {
    add('node -e 0', must('node -e 0', await run(node, ['-e', '0'], env)));
    add('trellis ADD', must(`trellis ADD ${i}`, await cni(plan.plugin, 'ADD', `bench-${i}`, plan.pods[i]!, trellisConf)));
    add('ptp + host-local ADD', must(`ptp ADD ${i}`, await cni('/usr/lib/cni/ptp', 'ADD', `ptp-${i}`, plan.pods[RUNS + i]!, ptpConf)));
    add('  trellis ADD, unbundled ES modules', must(`unbundled ADD ${i}`, await cni([node, plan.modules], 'ADD', `modules-${i}`, plan.pods[2 * RUNS + i]!, trellisConf)));
  }
  for (let i = 0; i < RUNS; i++) {
    add('trellis DEL', must(`trellis DEL ${i}`, await cni(plan.plugin, 'DEL', `bench-${i}`, plan.pods[i]!, trellisConf)));
    add('ptp + host-local DEL', must(`ptp DEL ${i}`, await cni('/usr/lib/cni/ptp', 'DEL', `ptp-${i}`, plan.pods[RUNS + i]!, ptpConf)));
    must(`unbundled DEL ${i}`, await cni([node, plan.modules], 'DEL', `modules-${i}`, plan.pods[2 * RUNS + i]!, trellisConf));
  }

  // Where a trellis ADD spends its time, piece by piece.
  for (let i = 0; i < RUNS; i++) {
    add('  plugin load (VERSION)', must('VERSION', await cni(plan.plugin, 'VERSION', '', '', {})));
    add('  /v1/allocate round trip', await timedApiCall(plan.socket, '/v1/allocate', { containerId: `api-${i}`, ifName: 'eth0', network: 'trellis' }));
    await timedApiCall(plan.socket, '/v1/release', { containerId: `api-${i}`, ifName: 'eth0' });
    add('  ip -batch (no commands)', must('ip', await run('ip', ['-batch', '-'], env)));
    add('  nsenter --net ip -batch (no commands)', must('nsenter', await run('nsenter', [`--net=${spare}`, 'ip', '-batch', '-'], env)));
  }

  const base = percentile(t['node -e 0']!, 0.5);
  const rows = Object.entries(t).map(([name, v]) => ({ name, p50: percentile(v, 0.5), p99: percentile(v, 0.99), n: v.length }));
  const width = Math.max(...rows.map((r) => r.name.length));
  console.log(`\nCNI plugin latency, ${RUNS} runs each (ms; p99 is nearest-rank)\n`);
  console.log(`${'command'.padEnd(width)}   p50.0   p99.0   × node -e 0 (p50)`);
  for (const r of rows) {
    console.log(`${r.name.padEnd(width)}  ${r.p50.toFixed(1).padStart(6)}  ${r.p99.toFixed(1).padStart(6)}   ${(r.p50 / base).toFixed(2)}`);
  }
  const p50 = (name: string): number => percentile(t[name]!, 0.5);
  // Each ratio once: printed (the unbundled one has no text: the table shows it) and recorded.
  const ratios: Array<{ key: string; value: number; text?: string; note?: string }> = [
    { key: 'cni_add_p50_over_node_p50', value: p50('trellis ADD') / base, text: 'trellis ADD p50 / node -e 0 p50', note: ' (target ≤ 1.5)' },
    { key: 'cni_del_p50_over_node_p50', value: p50('trellis DEL') / base, text: 'trellis DEL p50 / node -e 0 p50' },
    { key: 'cni_del_p50_over_ptp_del_p50', value: p50('trellis DEL') / p50('ptp + host-local DEL'), text: 'trellis DEL p50 / ptp + host-local DEL p50' },
    { key: 'cni_add_p50_over_ptp_add_p50', value: p50('trellis ADD') / p50('ptp + host-local ADD'), text: 'trellis ADD p50 / ptp + host-local ADD p50' },
    { key: 'cni_add_unbundled_p50_over_node_p50', value: p50('  trellis ADD, unbundled ES modules') / base },
  ];
  console.log('');
  for (const r of ratios) if (r.text !== undefined) console.log(`${r.text} = ${r.value.toFixed(2)}${r.note ?? ''}`);
  const figures: Record<string, number> = {};
  for (const r of rows) {
    const key = r.name.trim().replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, '').toLowerCase();
    figures[`cni_${key}_p50_ms`] = round(r.p50);
    figures[`cni_${key}_p99_ms`] = round(r.p99);
  }
  for (const r of ratios) figures[r.key] = round(r.value, 2);
  record(figures);
}

async function outside(): Promise<void> {
  const reason = needRoot();
  if (reason !== false) {
    console.error(`bench/cni ${reason}`);
    process.exit(1);
  }
  const etcd = await startEtcd();
  const lab = new Lab();
  const bin = mkdtempSync(join(tmpdir(), 'trellis-bench-cni-'));
  const d = daemon(undefined, { etcd: etcd.endpoint, nodeName: 'bench-node', hostIP: '198.18.1.60' });
  try {
    await seedTopology(etcd.endpoint);
    await d.start('IPAM API listening');
    const host = await lab.ns('bench-host');
    await lab.addr(host, 'lo', '198.18.1.60/32');
    const pods: string[] = [];
    for (let i = 0; i < 3 * RUNS + 1; i++) pods.push(`/var/run/netns/${(await lab.ns(`bp${i}`)).name}`);
    const plan: Plan = {
      socket: join(d.stateDir, 'trellisd.sock'),
      plugin: installPlugin(bin),
      modules: join(SELF, '..', '..', 'cni-plugin', 'trellis.js'),
      hostNetns: `/var/run/netns/${host.name}`,
      pods,
      dataDir: join(bin, 'host-local'),
    };
    const child = spawn('nsenter', [`--net=${plan.hostNetns}`, process.execPath, SELF, '--inside', JSON.stringify(plan)], { stdio: 'inherit' });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    if (code !== 0) throw new Error(`measuring process exited with ${code}`);
  } finally {
    await d.destroy();
    await etcd.destroy();
    await lab.destroy();
    rmSync(bin, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--inside') await inside(JSON.parse(process.argv[3]!) as Plan);
else await outside();
