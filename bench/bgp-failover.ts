// bench/bgp-failover: how fast a failed forwarder's BGP announcements move to
// a healthy host, as the upstream router (BIRD, lab/bgp-lab.ts) sees it.
// A BGP lab of SUBNETS × HOSTS hosts, every trellisd in exporter mode with
// its HTTP endpoint on its host IP (so the exporter probes its forwarders:
// 1 s interval, 2 misses, as the VPC advertiser) and a recovery time of 2 s.
// TRIALS times, a forwarder of subnet-1 that is not the exporter is
// SIGKILLed; the time is from the kill to the moment BIRD's table no longer
// routes any prefix through it (polled every 50 ms). It is then started
// again and the table awaited back before the next trial. The VPC figure of
// bench/failover (bench/results.json) is printed beside it.
// Prints numbers; asserts nothing.
//
// Run as root:  npm run build && node dist/bench/bgp-failover.js
// Environment:  BENCH_TRIALS (default 7, at least 5), BENCH_SUBNETS (default
// 2), BENCH_HOSTS (per subnet, default 3).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { needRoot } from '../lab/netns.js';
import { until } from '../lab/pids.js';
import { ROOT } from '../lab/trellis.js';
import { buildBgpLab, type BgpLab } from '../lab/bgp-lab.js';
import { percentile, record, round } from './lib/report.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const TRIALS = Math.max(5, Number(process.env.BENCH_TRIALS ?? 7));
const SUBNETS = Number(process.env.BENCH_SUBNETS ?? 2);
const HOSTS = Number(process.env.BENCH_HOSTS ?? 3);

const print = (line: string): void => void process.stdout.write(`${line}\n`);

async function table(lab: BgpLab): Promise<string> {
  return JSON.stringify(await lab.routes());
}

function vpcFigure(): string {
  const file = join(ROOT, 'bench/results.json');
  if (!existsSync(file)) return 'no bench/results.json';
  const text = readFileSync(file, 'utf8');
  const m = /"vpc_failover":\s*\{[^}]*"p50_s":\s*([0-9.]+)[^}]*"max_s":\s*([0-9.]+)/.exec(text);
  return m === null ? 'not in bench/results.json' : `p50 ${m[1]} s, max ${m[2]} s (bench/failover, bench/results.json)`;
}

async function main(): Promise<void> {
  const skip = needRoot();
  if (skip !== false) {
    print(`bench/bgp-failover: skipped: ${skip}`);
    return;
  }
  const t0 = performance.now();
  const lab = await buildBgpLab(undefined, { subnets: SUBNETS, hostsPerSubnet: HOSTS, probe: true, extraDaemonArgs: ['--vpc-recover-after', '2s'] });
  try {
    await lab.cluster.startDaemons(undefined, undefined, 60_000);
    await until('one prefix per node in BIRD', async () => (await lab.routes()).length === lab.cluster.hosts.length, 120_000, 200);
    const want = await table(lab);
    print(`lab: ${SUBNETS} subnets × ${HOSTS} hosts, BIRD holds ${lab.cluster.hosts.length} prefixes, ready in ${round((performance.now() - t0) / 1000, 1)} s`);
    const times: number[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const exporter = await lab.exporterOf('subnet-1');
      const candidates = lab.cluster.hosts.filter((h) => h.subnet === 'subnet-1' && h.name !== exporter);
      const victim = candidates[i % candidates.length]!;
      const killedAt = performance.now();
      victim.daemon.kill();
      await until('prefixes moved', async () => !(await lab.routes()).some((r) => r.nextHops.includes(victim.hostIP)), 60_000, 50);
      times.push(performance.now() - killedAt);
      await victim.daemon.start('cluster view synced', 60_000);
      await until('table back', async () => (await table(lab)) === want, 120_000, 200);
    }
    const p50 = round(percentile(times, 0.5) / 1000, 2);
    const p99 = round(percentile(times, 0.99) / 1000, 2);
    print(`bgp failover (forwarder SIGKILLed → its prefixes via another host in BIRD, probe 1 s × 2 misses): p50 ${p50} s, p99 ${p99} s, ${times.length} trials`);
    print(`vpc failover, for comparison: ${vpcFigure()}`);
    record({ bgp_failover: { trials: times.length, p50_s: p50, p99_s: p99 } });
  } finally {
    await lab.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/bgp-failover: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
