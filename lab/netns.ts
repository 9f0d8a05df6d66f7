// Network-namespace labs for multi-host tests: namespaces joined by veth pairs
// or by a Linux bridge living in another namespace, with processes spawned
// inside them.
//
// Invariants:
// * Every namespace is named `trl<pid>-<n>[-label]`, <pid> being the creating
//   process, and nothing is ever created in the host namespace (veth pairs are
//   created inside a lab namespace and their peer moved straight to another).
// * Before the first namespace of a process is made, namespaces with this
//   prefix whose <pid> is no longer alive (left by an interrupted run) are
//   deleted; no other namespace is ever touched.
// * At `destroy()`, at the end of the test (with `t`) or at the latest when the
//   process ends, spawned processes are killed by PID and the namespaces deleted.
// * `ping` only targets the test ranges 198.18.0.0/15 and 100.64.0.0/10.

import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { registerCleanup, onTeardown, type Teardown } from './cleanup.js';
import { CommandError, dieWithParent, isAlive, killSync, runCommand, stopChild } from './pids.js';

export const NETNS_PREFIX = 'trl';
const OWN_NAME = new RegExp(`^${NETNS_PREFIX}(\\d+)-`);

/** A namespace of a lab; `name` is what `ip netns` knows it by. */
export interface Netns {
  readonly name: string;
  readonly label: string;
}

/** A namespace or its full name. */
export type NsRef = Netns | string;

export interface ExecOptions {
  /** Added to (not replacing) this process's environment. */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** True when running as root. */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

let rootReason: string | false | undefined;

/**
 * `false` when network namespaces can be used here, else the reason to skip:
 * `t.test('x', { skip: needRoot() }, …)`. Probes `ip netns add` for real.
 */
export function needRoot(): string | false {
  if (rootReason !== undefined) return rootReason;
  if (!isRoot()) return (rootReason = 'needs root and network namespaces (not running as root)');
  const probe = `${NETNS_PREFIX}${process.pid}-probe`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    try {
      execFileSync('ip', ['-n', probe, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
    } finally {
      execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
    }
    rootReason = false;
  } catch (err) {
    const detail = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    rootReason = `needs root and network namespaces (ip netns add failed: ${detail})`;
  }
  return rootReason;
}

/** Names of all network namespaces (`ip netns list`). */
export function listNamespaces(): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/** Deletes namespaces of this helper whose creating process is dead; returns their names. */
export function sweepStaleNamespaces(): string[] {
  const swept: string[] = [];
  for (const name of listNamespaces()) {
    const pid = Number(OWN_NAME.exec(name)?.[1] ?? 0);
    if (pid <= 0 || pid === process.pid || isAlive(pid)) continue;
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' });
      swept.push(name);
    } catch {
      // another process swept it first
    }
  }
  return swept;
}

let swept = false;
let nsSeq = 0;

const TEST_RANGES: Array<[number, number]> = [
  [ipv4('198.18.0.0'), 15],
  [ipv4('100.64.0.0'), 10],
];

function ipv4(address: string): number {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return -1;
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

/** True for an IPv4 address inside 198.18.0.0/15 or 100.64.0.0/10. */
export function isTestAddress(address: string): boolean {
  const a = ipv4(address);
  if (a < 0) return false;
  return TEST_RANGES.some(([base, len]) => Math.floor(a / 2 ** (32 - len)) === Math.floor(base / 2 ** (32 - len)));
}

function checkIfname(ifname: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(ifname)) {
    throw new Error(`interface name ${JSON.stringify(ifname)}: 1-15 characters of [A-Za-z0-9_.-]`);
  }
}

function nameOf(ns: NsRef): string {
  return typeof ns === 'string' ? ns : ns.name;
}

export class Lab {
  private readonly spaces: Netns[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly unregister: () => void;
  private destroyed = false;
  private portSeq = 0;

  constructor(t?: Teardown) {
    this.unregister = registerCleanup(() => this.destroySync());
    onTeardown(t, () => this.destroy());
  }

  /** The namespaces made so far. */
  get namespaces(): readonly Netns[] {
    return this.spaces;
  }

  /** Creates a namespace with loopback up; `label` only makes its name readable. */
  async ns(label = ''): Promise<Netns> {
    if (this.destroyed) throw new Error('Lab: ns() after destroy()');
    if (!/^[A-Za-z0-9_.-]{0,24}$/.test(label)) throw new Error(`namespace label ${JSON.stringify(label)}`);
    if (!swept) {
      swept = true;
      sweepStaleNamespaces();
    }
    const name = `${NETNS_PREFIX}${process.pid}-${nsSeq++}${label === '' ? '' : `-${label}`}`;
    // Made synchronously and recorded at once: a signal's cleanup (which runs
    // on this thread) can never fall between the namespace existing and the
    // Lab knowing it, as it could while an `ip netns add` child was running.
    try {
      execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe' });
    } catch (err) {
      const e = err as { status?: number | null; stdout?: Buffer; stderr?: Buffer };
      const stderr = e.stderr?.toString() ?? '';
      throw new CommandError(`ip netns add ${name} failed (${e.status ?? null}): ${stderr.trim() || (err as Error).message}`, e.stdout?.toString() ?? '', stderr, e.status ?? null);
    }
    const ns: Netns = { name, label };
    this.spaces.push(ns);
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Creates bridge `name` in `ns` and brings it up. */
  async bridge(ns: NsRef, name: string): Promise<void> {
    checkIfname(name);
    await ip(['-n', nameOf(ns), 'link', 'add', 'name', name, 'type', 'bridge']);
    await this.up(ns, name);
  }

  /** Joins `ifA` in `nsA` and `ifB` in `nsB` with a veth pair; both ends up. */
  async veth(nsA: NsRef, ifA: string, nsB: NsRef, ifB: string): Promise<void> {
    checkIfname(ifA);
    checkIfname(ifB);
    await ip(['-n', nameOf(nsA), 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nameOf(nsB)]);
    await this.up(nsA, ifA);
    await this.up(nsB, ifB);
  }

  /**
   * Plugs `ns` into `bridge` (in `bridgeNs`) through a veth: `ifname` on the
   * namespace side (optionally with `cidr`), an attached port on the bridge side
   * whose name is returned.
   */
  async plug(ns: NsRef, ifname: string, bridgeNs: NsRef, bridge: string, cidr?: string): Promise<string> {
    const port = `p${this.portSeq++}-${bridge}`.slice(0, 15);
    await this.veth(ns, ifname, bridgeNs, port);
    await ip(['-n', nameOf(bridgeNs), 'link', 'set', 'dev', port, 'master', bridge]);
    if (cidr !== undefined) await this.addr(ns, ifname, cidr);
    return port;
  }

  /** Adds address `cidr` (e.g. `198.18.0.1/24`) to `ifname`. */
  async addr(ns: NsRef, ifname: string, cidr: string): Promise<void> {
    await ip(['-n', nameOf(ns), 'addr', 'add', cidr, 'dev', ifname]);
  }

  /** Sets `ifname` up. */
  async up(ns: NsRef, ifname: string): Promise<void> {
    await ip(['-n', nameOf(ns), 'link', 'set', 'dev', ifname, 'up']);
  }

  /** Turns IPv4 forwarding in `ns` on or off. */
  async forwarding(ns: NsRef, on = true): Promise<void> {
    await this.exec(ns, 'sysctl', ['-w', `net.ipv4.ip_forward=${on ? 1 : 0}`]);
  }

  /** One ICMP echo (`ping -c1 -W1`) from `ns` to a test address; true on reply. */
  async ping(ns: NsRef, address: string): Promise<boolean> {
    if (!isTestAddress(address)) throw new Error(`ping ${address}: not in 198.18.0.0/15 or 100.64.0.0/10`);
    try {
      await this.exec(ns, 'ping', ['-n', '-c1', '-W1', address]);
      return true;
    } catch {
      return false;
    }
  }

  /** Runs `cmd` in `ns` to completion; resolves with stdout, rejects with stderr. */
  exec(ns: NsRef, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<string> {
    return run('ip', ['netns', 'exec', nameOf(ns), cmd, ...args], opts);
  }

  /** Spawns `cmd` in `ns`; the child is killed by PID when the lab is destroyed. */
  spawn(ns: NsRef, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    if (this.destroyed) throw new Error('Lab: spawn() after destroy()');
    const [wrapper, wrapperArgs] = dieWithParent('ip', ['netns', 'exec', nameOf(ns), cmd, ...args]);
    const child = spawn(wrapper, wrapperArgs, { ...opts, detached: false });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  /** Stops spawned processes (SIGTERM, then SIGKILL) and deletes the namespaces. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all([...this.children].map((c) => stopChild(c, 3_000)));
    for (const ns of this.spaces.splice(0).reverse()) {
      await ip(['netns', 'del', ns.name]).catch(() => undefined);
    }
    this.unregister();
  }

  private destroySync(): void {
    this.destroyed = true;
    for (const child of this.children) {
      if (child.pid !== undefined) killSync(child.pid);
    }
    this.children.clear();
    for (const ns of this.spaces.splice(0).reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns.name], { stdio: 'pipe' });
      } catch {
        // already gone
      }
    }
  }
}

function ip(args: readonly string[]): Promise<string> {
  return run('ip', args, {});
}

function run(cmd: string, args: readonly string[], opts: ExecOptions): Promise<string> {
  return runCommand(cmd, args, { env: opts.env === undefined ? process.env : { ...process.env, ...opts.env }, timeoutMs: opts.timeoutMs });
}
