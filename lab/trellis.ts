// Running Trellis's own programs in tests: the built trellisd and trellisctl
// from dist/ (npm test builds first), a stored topology, and daemons that are
// stopped by PID when the test ends.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { loadTopology } from '../src/core/topology-parse.js';
import type { Topology } from '../src/core/topology.js';
import { TopologySchema } from '../src/gen/trellis/v1/records_pb.js';
import { Keys } from '../src/state/keys.js';
import { encodeRecord } from '../src/state/records.js';
import { topologyToRecord } from '../src/state/topology-record.js';
import { onTeardown, ownedTempDir, registerCleanup, type Teardown } from './cleanup.js';
import { delay, dieWithParent, killSync, stopChild, withoutNodeOptions } from './pids.js';

/** The repository root: the nearest directory up with Trellis's package.json (works from dist/ too). */
export const ROOT = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      if ((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'trellis') return dir;
    } catch {
      // not here
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the Trellis package.json above the test helpers');
    dir = up;
  }
})();

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

const checked = new Set<string>();

/**
 * Path of a built program under dist/: bin('daemon/trellisd') for an ES module
 * (`.js` is added), bin('cni/trellis.cjs') for the bundled CNI plugin. Fails
 * clearly when missing, warns when older than the sources.
 */
export function bin(name: string): string {
  const path = join(ROOT, 'dist', /\.c?js$/.test(name) ? name : `${name}.js`);
  if (!checked.has(path)) {
    let built = 0;
    try {
      built = statSync(path).mtimeMs;
    } catch {
      throw new Error(`${path} is missing: run "npm run build" (npm test does it first)`);
    }
    const sources = Math.max(...['src', 'daemon', 'cni-plugin'].map((d) => newestMtime(join(ROOT, d))));
    if (sources > built + 1000) console.error(`# warning: ${path} is older than the sources; run "npm run build" (npm test does)`);
    checked.add(path);
  }
  return path;
}

export const SAMPLE_TOPOLOGY = `
network: 100.96.0.0/16
blockSize: 26
subnetSize: 20
zones:
  - name: zone-a
    subnets:
      - id: subnet-a1
        cidr: 198.18.1.0/24
        routeTable: rtb-a
      - id: subnet-a2
        cidr: 198.18.2.0/24
        routeTable: rtb-a
  - name: zone-b
    subnets:
      - id: subnet-b1
        cidr: 198.18.3.0/24
        routeTable: rtb-b
`;

/** Store a topology (YAML text) in etcd as `trellisctl topology apply` would. */
export async function seedTopology(endpoint: string, yaml = SAMPLE_TOPOLOGY, prefix = '/trellis'): Promise<Topology> {
  const topology = loadTopology(yaml, 'test topology');
  const client = new Etcd3({ hosts: endpoint });
  try {
    await client.put(new Keys(prefix).topology()).value(encodeRecord(TopologySchema, topologyToRecord(topology, 1n, Date.now())));
  } finally {
    client.close();
  }
  return topology;
}

/** Node flags trellisd runs with when installed (its shebang, the image's entry point). */
export const TRELLISD_NODE_FLAGS = ['--max-semi-space-size=1'];

export interface DaemonOptions {
  etcd: string;
  nodeName: string;
  hostIP: string;
  iface?: string;
  holdTime?: string;
  /**
   * restartHoldTime; default '0s' here (a graceful stop withdraws the node one
   * hold time later, which most lab tests count on). Only for this checkout's
   * trellisd (older ones, `program`, have no such flag).
   */
  restartHoldTime?: string;
  stateDir?: string;
  netns?: string;
  args?: string[];
  env?: Record<string, string>;
  /** The trellisd entry point to run; default this checkout's dist/daemon/trellisd.js (lab/release.ts builds older ones). */
  program?: string;
  /** Flags for node itself, before the entry point; default TRELLISD_NODE_FLAGS. */
  nodeArgs?: string[];
}

export class Daemon {
  logs = '';
  child: ChildProcess | undefined;
  readonly stateDir: string;
  private readonly unregister: () => void;

  constructor(readonly options: DaemonOptions) {
    this.stateDir = options.stateDir ?? ownedTempDir('trellisd');
    const owned = options.stateDir === undefined;
    this.unregister = registerCleanup(() => {
      if (this.running && this.child?.pid !== undefined) killSync(this.child.pid);
      if (owned) rmSync(this.stateDir, { recursive: true, force: true });
    });
  }

  get running(): boolean {
    const c = this.child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Start (again) with the same state directory; resolves when the log says `untilLog`. */
  async start(untilLog: RegExp | string = 'cluster view synced', timeoutMs = 20_000): Promise<void> {
    const o = this.options;
    const args = [
      ...(o.nodeArgs ?? TRELLISD_NODE_FLAGS),
      o.program ?? bin('daemon/trellisd'),
      '--node-name', o.nodeName,
      '--host-ip', o.hostIP,
      '--interface', o.iface ?? 'eth0',
      '--etcd-endpoints', o.etcd,
      '--hold-time', o.holdTime ?? '3s',
      '--state-dir', this.stateDir,
      // The filesystem is shared even across namespaces: one IPAM socket per daemon.
      '--ipam-socket', join(this.stateDir, 'trellisd.sock'),
      // Outside a lab namespace a daemon must not touch this machine's routes,
      // and several share one loopback: no routes, an ephemeral HTTP port.
      ...(o.netns === undefined ? ['--routes-enabled', 'false', '--http-listen', '127.0.0.1:0'] : []),
      ...(o.program === undefined ? ['--restart-hold-time', o.restartHoldTime ?? '0s'] : []),
      ...(o.args ?? []),
    ];
    const [cmd, cmdArgs] = dieWithParent(
      ...(o.netns === undefined ? withoutNodeOptions(process.execPath, args) : withoutNodeOptions('ip', ['netns', 'exec', o.netns, process.execPath, ...args])),
    );
    const env = { ...process.env, ...(o.env ?? {}) };
    const child = spawn(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    const mark = this.logs.length;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.logs += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.logs += d));
    await this.waitForLog(untilLog, timeoutMs, mark);
  }

  /** Wait until the log (from offset `from`) matches. */
  async waitForLog(pattern: RegExp | string, timeoutMs = 20_000, from = 0): Promise<void> {
    const end = Date.now() + timeoutMs;
    const matches = (): boolean => {
      const text = this.logs.slice(from);
      return typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
    };
    while (!matches()) {
      if (!this.running && this.child !== undefined) throw new Error(`trellisd ${this.options.nodeName} exited:\n${this.logs.slice(-4000)}`);
      if (Date.now() > end) throw new Error(`trellisd ${this.options.nodeName}: no "${String(pattern)}" in ${timeoutMs} ms:\n${this.logs.slice(-4000)}`);
      await delay(25);
    }
  }

  /** The HTTP port trellisd bound (tests start it with --http-listen 127.0.0.1:0), from its log line. */
  httpPort(): number {
    for (const line of this.logs.split('\n')) {
      if (!line.startsWith('{')) continue;
      const rec = JSON.parse(line) as { msg?: string; port?: number };
      if (rec.msg === 'HTTP endpoint listening' && typeof rec.port === 'number') return rec.port;
    }
    throw new Error(`trellisd ${this.options.nodeName}: no "HTTP endpoint listening" line with a port in the log`);
  }

  async stop(): Promise<void> {
    if (this.child !== undefined && this.running) await stopChild(this.child);
  }

  kill(): void {
    if (this.child?.pid !== undefined && this.running) killSync(this.child.pid, 'SIGKILL');
  }

  async destroy(): Promise<void> {
    await this.stop();
    this.unregister();
    if (this.options.stateDir === undefined) rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** A trellisd for the test; destroyed when the test ends. */
export function daemon(t: Teardown | undefined, options: DaemonOptions): Daemon {
  const d = new Daemon(options);
  onTeardown(t, () => d.destroy());
  return d;
}

/** Run a built CLI (e.g. 'src/cli/trellisctl') to completion. */
export function runCli(name: string, args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin(name), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
