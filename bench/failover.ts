// bench/failover: how fast a failed forwarder's VPC entries move to a healthy
// host, and what the VPC advertisers cost in EC2 calls when nothing changes.
// A VPC lab (lab/vpc-lab.ts: a cluster lab of SUBNETS × HOSTS hosts,
// moto in the router, every EC2 call counted by a proxy) with every trellisd
// in VPC mode and the default probe settings (1 s interval, 2 misses) and
// verification interval (30 s); the recovery time is cut to 2 s so that
// trials follow each other quickly (it does not affect failover).
//  * Failover: TRIALS times, a forwarder of subnet-1 that is not the leader is
//    SIGKILLed; the time is from the kill to the last ReplaceRoute that moved
//    one of its entries (as the proxy saw moto answer it). Then it is started
//    again and its entries awaited back before the next trial.
//  * Steady state: once every table is settled, every EC2 call of every
//    daemon is counted over WINDOW seconds and extrapolated to an hour.
// Prints numbers; asserts nothing.
//
// Run as root:  npm run build && node dist/bench/failover.js
// Environment:  BENCH_TRIALS (default 7, at least 5), BENCH_WINDOW (seconds,
// default 120), BENCH_SUBNETS (default 2), BENCH_HOSTS (per subnet, default 3).

import { performance } from 'node:perf_hooks';
import { needMoto } from '../lab/moto.js';
import { needRoot } from '../lab/netns.js';
import { delay } from '../lab/pids.js';
import type { LabHost } from '../lab/cluster-lab.js';
import { buildVpcLab, until, type VpcLab } from '../lab/vpc-lab.js';
import { percentile, record, round } from './lib/report.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const TRIALS = Math.max(5, Number(process.env.BENCH_TRIALS ?? 7));
const WINDOW_S = Math.max(10, Number(process.env.BENCH_WINDOW ?? 120));
const SUBNETS = Number(process.env.BENCH_SUBNETS ?? 2);
const HOSTS = Number(process.env.BENCH_HOSTS ?? 3);
const ARGS = ['--vpc-recover-after', '2s'];

const print = (line: string): void => void process.stdout.write(`${line}\n`);

async function leaderOf(v: VpcLab, subnet: string): Promise<string> {
  return String((await v.statusOf(subnet))?.leader ?? '');
}

/** All tables hold exactly `want` (destination → target per table). */
async function settled(v: VpcLab, want: string): Promise<boolean> {
  return JSON.stringify([...(await v.entries())]) === want;
}

async function trial(v: VpcLab, victim: LabHost, want: string): Promise<number> {
  const id = v.instances.get(victim.name) as string;
  const mine = new Set([...(await v.entries()).values()].flat().filter((e) => e.target === id).map((e) => e.destination));
  v.proxy.resetCounts();
  const killedAt = Date.now();
  v.daemons.get(victim.name)?.kill();
  await until('entries moved', async () => ![...(await v.entries()).values()].flat().some((e) => e.target === id), 30_000, 50);
  const replaced = v.proxy.routeWrites(killedAt).filter((c) => mine.has(c.params.DestinationCidrBlock ?? ''));
  const ms = Math.max(...replaced.map((c) => c.at)) - killedAt;
  await v.daemon(victim, ARGS).start('cluster view synced', 30_000);
  await until('entries back', () => settled(v, want), 60_000, 200);
  return ms;
}

async function main(): Promise<void> {
  const skip = needRoot() || needMoto();
  if (skip !== false) {
    print(`bench/failover: skipped: ${skip}`);
    return;
  }
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const t0 = performance.now();
  const v = await buildVpcLab(undefined, { subnets: SUBNETS, hostsPerSubnet: HOSTS });
  try {
    await v.start(v.hosts, ARGS);
    const subnets = [...v.tables.keys()];
    // Settled: every node's entry in every table, no write for 3 s.
    await until('every entry in place', async () => [...(await v.entries()).values()].every((l) => l.length === v.hosts.length), 60_000, 200);
    await until('quiet', () => v.proxy.routeWrites(Date.now() - 3000).length === 0, 60_000, 500);
    const want = JSON.stringify([...(await v.entries())]);
    print(`lab: ${SUBNETS} subnets × ${HOSTS} hosts, ${v.tables.size} route tables, ready in ${round((performance.now() - t0) / 1000, 1)} s`);

    const s1 = subnets[0] as string;
    const times: number[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const leader = await leaderOf(v, s1);
      const candidates = v.hostsOf(s1).filter((h) => h.name !== leader);
      const victim = candidates[i % candidates.length] as LabHost;
      times.push(await trial(v, victim, want));
    }
    const sorted = [...times].sort((a, b) => a - b);
    print(
      `failover (forwarder SIGKILLed → its entries replaced, probe 1 s × 2 misses): p50 ${round(percentile(times, 0.5) / 1000, 2)} s, ` +
        `min ${round((sorted[0] ?? NaN) / 1000, 2)} s, max ${round((sorted.at(-1) ?? NaN) / 1000, 2)} s, ${times.length} trials`,
    );

    await until('quiet again', () => v.proxy.routeWrites(Date.now() - 3000).length === 0, 60_000, 500);
    v.proxy.resetCounts();
    const start = Date.now();
    await delay(WINDOW_S * 1000);
    const seconds = (Date.now() - start) / 1000;
    const counts = v.proxy.counts();
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const perHour = (n: number): number => Math.round((n * 3600) / seconds);
    const detail = Object.entries(counts).map(([a, n]) => `${a} ${perHour(n)}`).join(', ') || 'none';
    print(`steady state: ${perHour(total)} EC2 calls per hour for ${SUBNETS} subnets (${detail}); ${total} calls in ${round(seconds, 1)} s`);
    record({
      vpc_failover: { trials: times.length, p50_s: round(percentile(times, 0.5) / 1000, 2), max_s: round((sorted.at(-1) ?? NaN) / 1000, 2) },
      vpc_steady_state: { subnets: SUBNETS, calls_per_hour: perHour(total), window_s: round(seconds, 1) },
    });
  } finally {
    await v.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/failover: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
