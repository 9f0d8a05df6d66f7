// Runs iproute2 for the plugin: `ip -batch -` in the plugin's (host) network
// namespace, `nsenter --net=<netns> ip -batch -` in a pod's. Node cannot enter
// a network namespace itself, and one batch process per namespace is the
// cheapest way to reach the kernel from here (one fork+exec per side). Also
// checks, before any of that, that CNI_NETNS is a namespace nsenter can enter.
//
// Invariants:
//  * A batch is spawned before its commands are known, so its start-up cost
//    overlaps other work; commands are written as they become known and
//    executed in order; the first failing command ends the batch.
//  * A failure names the command that failed and what the kernel said, and is
//    classified: a namespace nsenter cannot enter → 102, a missing program →
//    107, anything the kernel refused → 103.
//  * Tokens reach `ip` quoted when needed (its batch syntax treats `#` as a
//    comment and splits on blanks); a token that cannot be quoted is refused.

import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { Code, CniError } from './cni.js';

const EXTRA_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function childEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ? `${process.env.PATH}:${EXTRA_PATH}` : EXTRA_PATH, LC_ALL: 'C' };
}

/** Quotes `token` for `ip -batch`. */
export function q(token: string): string {
  if (/^[A-Za-z0-9_.:/@+=,%-]+$/.test(token)) return token;
  if (!token.includes('"') && !token.includes('\\')) return `"${token}"`;
  if (!token.includes("'") && !token.includes('\\')) return `'${token}'`;
  throw new CniError(Code.InvalidEnvironment, `${JSON.stringify(token)} cannot be passed to iproute2`);
}

export interface BatchOutcome {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
  /** The command that failed (1-based line of the batch), when one did. */
  readonly failedCommand: string | undefined;
}

export class IpBatch {
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private readonly exited: Promise<BatchOutcome>;
  private closed = false;

  /** Spawns the batch now; `netns` (a path) runs it inside that namespace; `json` adds `-j`. */
  constructor(
    readonly netns: string | undefined,
    options: { json?: boolean; force?: boolean } = {},
  ) {
    const ipArgs = [...(options.json === true ? ['-j', '-N'] : []), ...(options.force === true ? ['-force'] : []), '-batch', '-'];
    const [cmd, args] = netns === undefined ? ['ip', ipArgs] : ['nsenter', [`--net=${netns}`, 'ip', ...ipArgs]];
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv() });
    let stdout = '';
    let stderr = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // A batch that died early makes writes fail with EPIPE; its exit says why.
    this.child.stdin!.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err: NodeJS.ErrnoException) => {
        resolve({ ok: false, stdout, stderr: `${cmd}: ${err.code === 'ENOENT' ? 'not found' : err.message}`, failedCommand: undefined });
      });
      this.child.once('close', (code) => {
        const m = /Command failed -:(\d+)/.exec(stderr);
        const failed = m === null ? undefined : this.lines[Number(m[1]) - 1];
        resolve({ ok: code === 0, stdout, stderr: stderr.trim(), failedCommand: failed });
      });
    });
  }

  /** True once the input is closed: no more commands. */
  get ended(): boolean {
    return this.closed;
  }

  /** Queues commands (one per string, without newline). */
  write(...commands: string[]): void {
    if (this.closed) throw new Error('IpBatch: write after end');
    if (commands.length === 0) return;
    this.lines.push(...commands);
    this.child.stdin!.write(`${commands.join('\n')}\n`);
  }

  /** Ends the input and resolves when the batch has run. */
  finish(): Promise<BatchOutcome> {
    if (!this.closed) {
      this.closed = true;
      this.child.stdin!.end();
    }
    return this.exited;
  }

  /** `finish()`, then throws the classified failure unless it succeeded. */
  async run(what: string): Promise<string> {
    const out = await this.finish();
    if (!out.ok) throw classify(out, what, this.netns);
    return out.stdout;
  }
}

/** The CniError for a failed batch. */
export function classify(out: BatchOutcome, what: string, netns: string | undefined): CniError {
  const lastLine = out.stderr
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('Command failed'))
    .join('; ');
  if (/^(ip|nsenter): not found$/.test(out.stderr)) {
    return new CniError(Code.ToolMissing, `${what}: ${out.stderr} (install iproute2 and util-linux)`);
  }
  if (out.stderr.startsWith('nsenter:')) {
    return new CniError(Code.NetnsUnusable, `${what}: cannot enter network namespace ${netns ?? ''}: ${lastLine.replace(/^nsenter: /, '')}`);
  }
  const cmd = out.failedCommand === undefined ? '' : ` (ip ${out.failedCommand})`;
  return new CniError(Code.KernelRefused, `${what}: ${lastLine || 'ip failed'}${cmd}`);
}

/** Runs `commands` in one batch (host namespace unless `netns`); resolves with the outcome. */
export function runBatch(commands: string[], netns?: string, options: { json?: boolean; force?: boolean } = {}): Promise<BatchOutcome> {
  const b = new IpBatch(netns, options);
  b.write(...commands);
  return b.finish();
}

/** Parses `ip -j -batch` output: one JSON array per command, one per line. */
export function parseJsonLines(stdout: string): unknown[][] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const v = JSON.parse(l) as unknown;
      return Array.isArray(v) ? v : [];
    });
}

/** True when a failed `link del` only found nothing to delete. */
export function isMissingDevice(out: BatchOutcome): boolean {
  return !out.ok && /Cannot find device/.test(out.stderr);
}

/**
 * Checks that CNI_NETNS names a network namespace other than the plugin's:
 * missing → 3 (container unknown), not a namespace file or the host's own → 102.
 */
export function checkNetns(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new CniError(Code.UnknownContainer, `network namespace ${path} does not exist`);
    throw new CniError(Code.NetnsUnusable, `network namespace ${path}: ${code ?? (err as Error).message}`);
  }
  // Namespace files (nsfs bind mounts, /proc/<pid>/ns/net) are regular files;
  // anything else (a FIFO would block nsenter) is refused.
  if (!st.isFile()) throw new CniError(Code.NetnsUnusable, `${path} is not a network namespace file`);
  const own = statSync('/proc/self/ns/net');
  if (st.ino === own.ino && st.dev === own.dev) {
    throw new CniError(Code.NetnsUnusable, `${path} is the plugin's own network namespace, not a pod's`);
  }
}
