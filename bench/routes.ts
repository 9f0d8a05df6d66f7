// bench/routes: installing and removing 10,000 IPv4 /32 routes via a gateway
// with the RouteProgrammer (netlink, 64 requests in flight) versus
// `ip -batch` (iproute2), inside a fresh network namespace that is deleted
// afterwards. Prints times and routes/s for each and their ratio; asserts
// nothing.
//
// Run as root:  npm run build && node dist/bench/routes.js
// Environment:  BENCH_ROUTES (default 10000), BENCH_ROUNDS (default 3, best
// round reported), BENCH_IN_FLIGHT (1..64, default 64).
//
// The process re-runs itself under `ip netns exec` (`--inside <ns>`) so the
// programmer's sockets open in the bench namespace; the outer process only
// creates and deletes the namespace (named trlbench-<pid>).

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAddress, parsePrefix } from '../src/core/cidr.js';
import type { KernelRoute } from '../src/core/route.js';
import { RouteProgrammer, TRELLIS_RTPROT } from '../src/netlink/route-programmer.js';
import { record, round } from './lib/report.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const COUNT = Number(process.env.BENCH_ROUTES ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 64);
const GATEWAY = '198.18.0.2';

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function outer(): number {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/routes: needs root (network namespaces)\n');
    return 1;
  }
  const ns = `trlbench-${process.pid}`;
  const cleanup = (): void => {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // not created or already gone
    }
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    cleanup();
    process.kill(process.pid, signal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    ip(['netns', 'add', ns]);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    ip(['-n', ns, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd0p']);
    ip(['-n', ns, 'link', 'set', 'd0', 'up']);
    ip(['-n', ns, 'link', 'set', 'd0p', 'up']);
    ip(['-n', ns, 'addr', 'add', '198.18.0.1/24', 'dev', 'd0']);
    const self = fileURLToPath(import.meta.url);
    const run = spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...process.execArgv, self, '--inside', ns], {
      stdio: 'inherit',
    });
    return run.status ?? 1;
  } finally {
    cleanup();
  }
}

function destinations(): string[] {
  const out: string[] = [];
  for (let i = 0; i < COUNT; i++) out.push(`100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
  return out;
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function inside(): Promise<number> {
  const texts = destinations();
  const gateway = parseAddress(GATEWAY);
  const all: KernelRoute[] = texts.map((d) => ({
    dst: parsePrefix(d),
    type: 'unicast',
    gateway,
    table: 254,
    protocol: TRELLIS_RTPROT,
  }));
  const programmer = new RouteProgrammer({ maxInFlight: IN_FLIGHT });
  const dir = mkdtempSync(join(tmpdir(), 'trlbench-'));
  const addFile = join(dir, 'add');
  const delFile = join(dir, 'del');
  writeFileSync(addFile, texts.map((d) => `route add ${d} via ${GATEWAY} proto ${TRELLIS_RTPROT}\n`).join(''));
  writeFileSync(delFile, texts.map((d) => `route del ${d} via ${GATEWAY} proto ${TRELLIS_RTPROT}\n`).join(''));
  const best = { progAdd: Infinity, progDel: Infinity, ipAdd: Infinity, ipDel: Infinity, dump: Infinity };
  const count = async (): Promise<number> => (await programmer.list({ table: 254, protocol: TRELLIS_RTPROT })).length;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      let t0 = process.hrtime.bigint();
      const added = await programmer.apply({ add: all, replace: [], remove: [] });
      best.progAdd = Math.min(best.progAdd, seconds(t0));
      if (added.errors.length > 0) throw added.errors[0]?.error;
      t0 = process.hrtime.bigint();
      const n = await count();
      best.dump = Math.min(best.dump, seconds(t0));
      if (n !== COUNT) throw new Error(`programmer installed ${n} routes, expected ${COUNT}`);
      t0 = process.hrtime.bigint();
      const removed = await programmer.apply({ add: [], replace: [], remove: all });
      best.progDel = Math.min(best.progDel, seconds(t0));
      if (removed.removed !== COUNT || (await count()) !== 0) throw new Error('programmer left routes behind');

      t0 = process.hrtime.bigint();
      ip(['-batch', addFile]);
      best.ipAdd = Math.min(best.ipAdd, seconds(t0));
      if ((await count()) !== COUNT) throw new Error('ip -batch did not install every route');
      t0 = process.hrtime.bigint();
      ip(['-batch', delFile]);
      best.ipDel = Math.min(best.ipDel, seconds(t0));
      if ((await count()) !== 0) throw new Error('ip -batch left routes behind');
    }
  } finally {
    programmer.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const rate = (s: number): string => `${Math.round(COUNT / s).toLocaleString('en-US').padStart(9)} routes/s`;
  const line = (what: string, s: number): string => `${what.padEnd(22)} ${(s * 1000).toFixed(1).padStart(8)} ms ${rate(s)}`;
  const out = [
    `bench/routes: ${COUNT} IPv4 /32 routes via ${GATEWAY}, best of ${ROUNDS} rounds, programmer window ${IN_FLIGHT}`,
    line('install programmer', best.progAdd),
    line('install ip -batch', best.ipAdd),
    line('remove programmer', best.progDel),
    line('remove ip -batch', best.ipDel),
    line('list (dump) programmer', best.dump),
    `ratio programmer / ip -batch (routes/s): install ${(best.ipAdd / best.progAdd).toFixed(2)}, remove ${(best.ipDel / best.progDel).toFixed(2)}`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  const perSecond = (sec: number): number => Math.round(COUNT / sec);
  record({
    route_programming: {
      routes: COUNT,
      install_per_s: perSecond(best.progAdd),
      install_ip_batch_per_s: perSecond(best.ipAdd),
      install_ratio: round(best.ipAdd / best.progAdd, 2),
      remove_per_s: perSecond(best.progDel),
      remove_ip_batch_per_s: perSecond(best.ipDel),
      remove_ratio: round(best.ipDel / best.progDel, 2),
      list_ms: round(best.dump * 1000),
    },
  });
  return 0;
}

if (process.argv[2] === '--inside') {
  inside().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`bench/routes: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
} else {
  process.exitCode = outer();
}
