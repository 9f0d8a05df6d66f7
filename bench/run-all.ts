// `npm run bench`: runs every benchmark under bench/ one after the other
// (each prints its own lines as it goes), then prints one summary table and
// writes bench/results.json with every figure and the machine it came from.
// Benchmarks that need root or a tool that is missing are reported as
// skipped, with the reason, instead of failing the run.
//
// Run as root: npm run bench   (builds first; `npm run bench -- --full` runs
// bench/scale at full size: 5,000 nodes, 500,000 pod addresses)

import { spawnSync } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Figure, Figures } from './lib/report.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');

interface Bench {
  name: string;
  /** Compiled file under dist/bench/. */
  file: string;
  root: boolean;
  env?: Record<string, string>;
}

const BENCHES: Bench[] = [
  { name: 'cidr', file: 'cidr.js', root: false },
  { name: 'planner-groups', file: 'planner-groups.js', root: false },
  { name: 'routes', file: 'routes.js', root: true },
  { name: 'convergence', file: 'convergence.js', root: true },
  { name: 'cni', file: 'cni.js', root: true },
  { name: 'failover', file: 'failover.js', root: true },
  { name: 'vpc-plan', file: 'plan.js', root: false },
  // Moto behind a proxy enforcing EC2's 50 + 5/s bucket: about three minutes, most of it waiting for tokens.
  { name: 'vpc-throttle', file: 'vpc-throttle.js', root: false },
  { name: 'bgp-failover', file: 'bgp-failover.js', root: true },
  // Reduced by default (500 nodes, 50,000 pods: under a minute); `--full` for 5,000 nodes and 500,000 pods.
  { name: 'scale', file: 'scale.js', root: true, env: process.argv.includes('--full') ? { BENCH_SCALE_FULL: '1' } : {} },
];

function machine(): Figures {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
  };
}

function flatten(prefix: string, value: Figure, out: Array<[string, string]>): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(prefix === '' ? k : `${prefix}.${k}`, v, out);
  } else if (Array.isArray(value)) {
    out.push([prefix, `${value.length} rows`]);
  } else {
    out.push([prefix, String(value)]);
  }
}

function main(): number {
  const isRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-'));
  const results: Figures = {};
  const status: Array<[string, string, number]> = [];
  const started = Date.now();
  try {
    for (const b of BENCHES) {
      const file = join(HERE, b.file);
      if (!existsSync(file)) {
        status.push([b.name, 'missing (run npm run build)', 0]);
        continue;
      }
      if (b.root && !isRoot) {
        status.push([b.name, 'skipped: needs root (network namespaces)', 0]);
        continue;
      }
      const out = join(dir, `${b.name}.json`);
      process.stdout.write(`\n=== bench/${b.name}\n`);
      const t = Date.now();
      const r = spawnSync(process.execPath, [file], { stdio: 'inherit', env: { ...process.env, ...b.env, BENCH_RESULTS: out }, cwd: ROOT });
      const seconds = Math.round((Date.now() - t) / 1000);
      if (existsSync(out)) results[b.name] = JSON.parse(readFileSync(out, 'utf8')) as Figures;
      status.push([b.name, r.status === 0 ? 'ok' : `failed (exit ${r.status ?? r.signal})`, seconds]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const report = { date: new Date().toISOString(), machine: machine(), total_seconds: Math.round((Date.now() - started) / 1000), status: Object.fromEntries(status.map(([n, s, sec]) => [n, { status: s, seconds: sec }])), results };
  writeFileSync(join(ROOT, 'bench', 'results.json'), `${JSON.stringify(report, null, 2)}\n`);

  const rows: Array<[string, string]> = [];
  for (const [name, figures] of Object.entries(results)) flatten(name, figures, rows);
  const width = Math.max(...rows.map(([k]) => k.length), 10);
  process.stdout.write(`\n=== summary (${report.total_seconds} s; ${String(report.machine.cpu)}, ${String(report.machine.cores)} cores)\n`);
  for (const [name, s, sec] of status) process.stdout.write(`${name.padEnd(16)} ${s} (${sec} s)\n`);
  process.stdout.write('\n');
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  process.stdout.write(`\nwritten: bench/results.json\n`);
  return status.some(([, s]) => s.startsWith('failed')) ? 1 : 0;
}

process.exitCode = main();
