// A real container runtime for a lab host: one containerd (with its CRI
// plugin) per host namespace, everything it owns under one temporary
// directory (root, state, sockets, opt), its CNI bin_dir/conf_dir pointing
// where that host's trellisd installs the plugin and its configuration list.
//
// containerd is entered into the host's network namespace with
// `nsenter --net` (not `ip netns exec`, whose private /sys remount leaves runc
// without a cgroup mount). The CRI plugin runs with restrict_oom_score_adj
// (negative oom_score_adj may be refused) and a sandbox image imported from an
// archive, never pulled.
//
// Invariants: nothing is pulled from a registry; `stop()` (also at test
// teardown, or at process exit through the lab's cleanups) kills this
// instance's tasks and shims by PID, unmounts whatever it mounted under its
// directory, then removes the directory.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { onTeardown, ownedTempDir, registerCleanup, type Teardown } from './cleanup.js';
import type { Netns } from './netns.js';
import { delay, dieWithParent, killSync, runCommand, stopChild, which } from './pids.js';

export const CRI_NAMESPACE = 'k8s.io';

/** undefined when containerd, runc and nsenter are installed and this process is root; else why not. */
export function containerdMissing(): string | undefined {
  for (const tool of ['containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'nsenter', 'buildah']) {
    if (which(tool) === undefined) return `${tool} is not installed (Debian packages containerd, runc, buildah, util-linux)`;
  }
  if (process.getuid?.() !== 0) return 'containerd needs root';
  return undefined;
}

export interface ContainerdOptions {
  /** The host namespace containerd runs in. */
  ns: Netns;
  /** CNI plugin directory and configuration directory of the CRI plugin. */
  cniBinDir: string;
  cniConfDir: string;
  /** Image reference the CRI plugin uses for pod sandboxes (imported with `importImage`). */
  sandboxImage: string;
}

function configToml(dir: string, o: ContainerdOptions): string {
  const q = JSON.stringify;
  return `version = 2
root = ${q(join(dir, 'root'))}
state = ${q(join(dir, 'state'))}

[grpc]
  address = ${q(join(dir, 'containerd.sock'))}

[ttrpc]
  address = ${q(join(dir, 'containerd.sock.ttrpc'))}

[debug]
  address = ${q(join(dir, 'debug.sock'))}

[plugins."io.containerd.internal.v1.opt"]
  path = ${q(join(dir, 'opt'))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(o.sandboxImage)}
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = ${q(o.cniBinDir)}
  conf_dir = ${q(o.cniConfDir)}
`;
}

export class Containerd {
  readonly dir: string;
  readonly socket: string;
  logs = '';
  private child: ChildProcess | undefined;
  private readonly unregister: () => void;
  private stopped = false;

  constructor(readonly options: ContainerdOptions) {
    this.dir = ownedTempDir('containerd');
    this.socket = join(this.dir, 'containerd.sock');
    this.unregister = registerCleanup(() => this.cleanupSync());
  }

  /** Starts containerd; resolves once its CRI socket answers. */
  async start(timeoutMs = 30_000): Promise<void> {
    const config = join(this.dir, 'config.toml');
    writeFileSync(config, configToml(this.dir, this.options));
    const [cmd, args] = dieWithParent('nsenter', [`--net=/run/netns/${this.options.ns.name}`, 'containerd', '--config', config, '--log-level', 'info']);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.logs += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.logs += d));
    const end = Date.now() + timeoutMs;
    while (!(existsSync(this.socket) && this.logs.includes('containerd successfully booted'))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`containerd exited:\n${this.logs.slice(-4000)}`);
      if (Date.now() > end) throw new Error(`containerd did not boot in ${timeoutMs} ms:\n${this.logs.slice(-4000)}`);
      await delay(50);
    }
  }

  /** `ctr` against this instance, in the CRI namespace. */
  ctr(args: readonly string[], timeoutMs = 120_000): Promise<string> {
    return runCommand('ctr', ['--address', this.socket, '--namespace', CRI_NAMESPACE, ...args], { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' }, timeoutMs });
  }

  /** Imports an OCI archive (e.g. from deploy/image/build.sh) into the CRI namespace. */
  async importImage(archive: string): Promise<void> {
    await this.ctr(['images', 'import', '--no-unpack=false', archive]);
  }

  /** PIDs of the shims serving this instance (their command line names its socket). */
  shimPids(): number[] {
    const out: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        if (cmdline[0]?.endsWith('containerd-shim-runc-v2') && cmdline.includes(this.socket)) out.push(Number(entry));
      } catch {
        // exited meanwhile
      }
    }
    return out;
  }

  /** Mount points under this instance's directory, deepest first. */
  private mounts(): string[] {
    const text = readFileSync('/proc/self/mountinfo', 'utf8');
    return text
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m === this.dir || m.startsWith(`${this.dir}/`))
      .sort((a, b) => b.length - a.length);
  }

  private cleanupSync(): void {
    if (this.child?.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) killSync(this.child.pid, 'SIGKILL');
    for (const pid of this.shimPids()) killSync(pid, 'SIGKILL');
    for (const m of this.mounts()) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Stops containerd (SIGTERM), kills its shims, unmounts and removes its directory. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.child !== undefined) await stopChild(this.child);
    this.cleanupSync();
    this.unregister();
  }
}

/** A started containerd in `o.ns`, with the sandbox image imported (when given); stopped at teardown. */
export async function startContainerd(t: Teardown | undefined, o: ContainerdOptions & { sandboxArchive?: string }): Promise<Containerd> {
  mkdirSync(o.cniBinDir, { recursive: true });
  mkdirSync(o.cniConfDir, { recursive: true });
  const c = new Containerd(o);
  onTeardown(t, () => c.stop());
  await c.start();
  if (o.sandboxArchive !== undefined) await c.importImage(o.sandboxArchive);
  return c;
}
