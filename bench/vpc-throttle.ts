// bench/vpc-throttle: how long pods stay unreachable while an advertiser's
// writes are paced by EC2's bucket of mutating route calls (burst 50,
// 5 per second), reachability first (src/core/vpc-reach-order.ts) beside the
// naive per-table order (src/core/vpc-apply-order.ts), in the same run.
// Moto behind the lab's throttling proxy (lab/vpc-throttle.ts), the EC2
// adapter paced by its client-side bucket (defaults: EC2's).
//  * joins: JOIN_EXISTING nodes routed, JOINING nodes join at once (one new
//    entry per node and table);
//  * failover: a forwarder carrying FAIL_CARRIED entries (its own in each
//    table and other nodes' blocks) fails, FAIL_REBALANCE entries per table
//    wait to move back to their owners.
// For every pod block: the time from the start of the pass until it is
// reachable for good (in every table its longest-prefix match targets a live
// forwarder); p50 / p99 / max over the blocks, and the pass's duration.
// Prints numbers; asserts nothing.
//
// Run: npm run build && node dist/bench/vpc-throttle.js
// Environment: BENCH_JOINING (default 300), BENCH_JOIN_EXISTING (20),
// BENCH_JOIN_TABLES (1), BENCH_FAIL_NODES (150), BENCH_FAIL_CARRIED (50),
// BENCH_FAIL_REBALANCE (50), BENCH_FAIL_TABLES (2).

import { needMoto } from '../lab/moto.js';
import { buildThrottleWorld, closeThrottleWorld, failoverScenario, joinScenario, plannedEntries, runPass, seed, tableEntries, type Order, type PassResult, type Scenario, type ThrottleWorld } from '../lab/vpc-throttle.js';
import { percentile, record, round, type Figures } from './lib/report.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const JOINING = Number(process.env.BENCH_JOINING ?? 300);
const JOIN_EXISTING = Number(process.env.BENCH_JOIN_EXISTING ?? 20);
const JOIN_TABLES = Number(process.env.BENCH_JOIN_TABLES ?? 1);
const FAIL_NODES = Number(process.env.BENCH_FAIL_NODES ?? 150);
const FAIL_CARRIED = Number(process.env.BENCH_FAIL_CARRIED ?? 50);
const FAIL_REBALANCE = Number(process.env.BENCH_FAIL_REBALANCE ?? 50);
const FAIL_TABLES = Number(process.env.BENCH_FAIL_TABLES ?? 2);

const print = (line: string): void => void process.stdout.write(`${line}\n`);

interface Row {
  order: Order;
  writes: number;
  throttled: number;
  pass_s: number;
  reach_p50_s: number;
  reach_p99_s: number;
  reach_max_s: number;
  converged: boolean;
}

async function measure(w: ThrottleWorld, make: () => Scenario, order: Order): Promise<Row> {
  const s = await seed(w, make());
  w.proxy.resetCounts();
  const r: PassResult = await runPass(w, s, order);
  const converged = JSON.stringify(await tableEntries(w, s)) === JSON.stringify(plannedEntries(s));
  const secs = (ms: number): number => round(ms / 1000, 2);
  return {
    order,
    writes: r.writes,
    throttled: r.throttled,
    pass_s: secs(r.durationMs),
    reach_p50_s: secs(percentile(r.reachMs, 0.5)),
    reach_p99_s: secs(percentile(r.reachMs, 0.99)),
    reach_max_s: secs(Math.max(...r.reachMs)),
    converged,
  };
}

async function main(): Promise<void> {
  const skip = needMoto();
  if (skip !== false) {
    print(`skipped: ${skip}`);
    return;
  }
  // The failed forwarder's own entry in each table counts among the entries it carries.
  const carriedForOthers = Math.max(0, FAIL_CARRIED - FAIL_TABLES);
  const w = await buildThrottleWorld(undefined, Math.max(JOIN_EXISTING + JOINING, FAIL_NODES));
  const out: Record<string, { scenario: string; rows: Row[] }> = {};
  try {
    const scenarios: Array<[string, string, () => Scenario]> = [
      ['joins', `${JOINING} nodes join at once (${JOIN_EXISTING} routed before), ${JOIN_TABLES} table(s)`, () => joinScenario(w.instances, JOIN_EXISTING, JOINING, JOIN_TABLES)],
      [
        'failover',
        `a forwarder carrying ${FAIL_CARRIED} entries fails (${FAIL_NODES} nodes, ${FAIL_TABLES} tables, ${FAIL_REBALANCE} entries per table awaiting rebalancing)`,
        () => failoverScenario(w.instances, FAIL_NODES, carriedForOthers, FAIL_REBALANCE, FAIL_TABLES),
      ],
    ];
    print(`EC2 bucket of mutating route calls (proxy and client): burst ${w.bucket.burst}, ${w.bucket.refillPerSecond}/s`);
    for (const [name, what, make] of scenarios) {
      print(`\n${name}: ${what}`);
      print('ORDER  WRITES  THROTTLED  PASS s  REACHABLE p50 s  p99 s  max s  CONVERGED');
      const rows: Row[] = [];
      for (const order of ['naive', 'reach'] as const) {
        const row = await measure(w, make, order);
        rows.push(row);
        print(
          `${order.padEnd(6)} ${String(row.writes).padStart(6)}  ${String(row.throttled).padStart(9)}  ${String(row.pass_s).padStart(6)}  ${String(row.reach_p50_s).padStart(15)}  ${String(row.reach_p99_s).padStart(5)}  ${String(row.reach_max_s).padStart(5)}  ${row.converged}`,
        );
      }
      out[name] = { scenario: what, rows };
    }
  } finally {
    await closeThrottleWorld(w);
  }
  record({ vpc_throttle: { bucket: { burst: w.bucket.burst, refill_per_second: w.bucket.refillPerSecond }, ...out } as unknown as Figures });
}

await main();
