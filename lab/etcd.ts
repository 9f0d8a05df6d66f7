// Throwaway etcd servers for adapter tests. Each server gets its own temp
// directory (etcd data, its log file, TLS material) and reserved loopback
// client and peer ports, so it can be stopped and started again on the same
// ports and data under running clients. Optionally it serves TLS with
// client-certificate auth, or runs inside a network namespace of a `Lab`.
//
// Invariants: the server is always killed by its PID and its directory removed
// at the latest when the process ends (see cleanup.ts); with a tap `t` this
// already happens when the test ends.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ownedTempDir, registerCleanup, onTeardown, type Teardown } from './cleanup.js';
import { freePorts } from './ports.js';
import { delay, dieWithParent, isAlive, killChild, killSync, runCommand, stopChild } from './pids.js';

export interface EtcdOptions {
  /** Serve https with client-certificate auth (certificates generated with openssl). */
  tls?: boolean;
  /** Run inside this network namespace (full name, e.g. `Netns.name`). */
  netns?: string;
  /** Listen address; default 127.0.0.1. With `netns`, an address of that namespace. */
  host?: string;
  /** How long `start()` waits for the server to become healthy; default 30 s. */
  startTimeoutMs?: number;
  /** Extra etcd flags, e.g. `['--auto-compaction-retention=1']`. */
  extraArgs?: string[];
}

/** Client TLS files (PEM paths). */
export interface EtcdTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** Options in the shape of the `etcd3` client's `IOptions`. */
export interface Etcd3ClientOptions {
  hosts: string[];
  credentials?: { rootCertificate: Buffer; certChain: Buffer; privateKey: Buffer };
}

export interface EtcdctlOptions {
  /** Per-command timeout; default 10 s. */
  timeoutMs?: number;
  /** Connection timeout; default 2 s. */
  dialTimeoutMs?: number;
}

/** Starts a fresh etcd; with `t`, destroys it when the test ends. */
export async function startEtcd(t?: Teardown, opts: EtcdOptions = {}): Promise<EtcdServer> {
  const [clientPort, peerPort] = await freePorts(2);
  const server = new EtcdServer(clientPort!, peerPort!, opts);
  onTeardown(t, () => server.destroy());
  try {
    if (opts.tls) await server.generateTls();
    await server.start();
  } catch (err) {
    await server.destroy();
    throw err;
  }
  return server;
}

export class EtcdServer {
  /** Client URL, e.g. `http://127.0.0.1:23791` or `https://…` with TLS. */
  readonly endpoint: string;
  /** Temp directory holding `data/`, `etcd.log` and `tls/`; removed by `destroy()`. */
  readonly dataDir: string;
  readonly logFile: string;
  readonly host: string;
  /** Client TLS files when started with `tls: true`. */
  tls: EtcdTlsFiles | undefined;
  private child: ChildProcess | undefined;
  private lastPid = 0;
  private destroyed = false;
  private readonly unregister: () => void;
  private readonly serverTls: { ca: string; cert: string; key: string } | undefined;

  constructor(
    readonly clientPort: number,
    readonly peerPort: number,
    private readonly opts: EtcdOptions,
  ) {
    this.host = opts.host ?? '127.0.0.1';
    const scheme = opts.tls ? 'https' : 'http';
    this.endpoint = `${scheme}://${this.host}:${clientPort}`;
    this.dataDir = ownedTempDir('etcd');
    this.logFile = join(this.dataDir, 'etcd.log');
    const tlsDir = join(this.dataDir, 'tls');
    this.serverTls = opts.tls
      ? { ca: join(tlsDir, 'ca.crt'), cert: join(tlsDir, 'server.crt'), key: join(tlsDir, 'server.key') }
      : undefined;
    this.unregister = registerCleanup(() => {
      if (this.child !== undefined && this.running) killSync(this.lastPid);
      rmSync(this.dataDir, { recursive: true, force: true });
    });
  }

  /** PID of the running server, or of the last one if it is stopped. */
  get pid(): number {
    return this.lastPid;
  }

  get running(): boolean {
    const c = this.child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  /** Starts etcd (again) on the same ports and data; resolves once it answers. */
  async start(): Promise<void> {
    if (this.destroyed) throw new Error('etcd: start() after destroy()');
    if (this.running) return;
    const args = this.args();
    const [cmd, cmdArgs] =
      this.opts.netns === undefined
        ? dieWithParent('etcd', args)
        : dieWithParent('ip', ['netns', 'exec', this.opts.netns, 'etcd', ...args]);
    const log = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(cmd, cmdArgs, { stdio: ['ignore', log, log], env: cleanEnv() });
    } finally {
      closeSync(log);
    }
    this.child = child;
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (err) => resolve(err));
    });
    if (spawned !== undefined) throw new Error(`etcd: cannot spawn ${cmd}: ${spawned.message}`);
    this.lastPid = child.pid ?? 0;
    await this.waitHealthy(child);
  }

  /** SIGTERM by PID, wait for the exit, SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.resume(); // a paused etcd would not act on SIGTERM
    if (this.child !== undefined) await stopChild(this.child, timeoutMs);
  }

  /** SIGSTOP by PID: the process stays, answers nothing (a hung or partitioned etcd) until resume(). */
  pause(): void {
    if (this.running) process.kill(this.lastPid, 'SIGSTOP');
  }

  /** SIGCONT by PID after pause(). */
  resume(): void {
    if (this.running) process.kill(this.lastPid, 'SIGCONT');
  }

  /** SIGKILL by PID and wait for the exit. */
  async kill(): Promise<void> {
    if (this.child !== undefined) await killChild(this.child);
  }

  /** Stops the server and removes its directory. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.stop(5_000);
    rmSync(this.dataDir, { recursive: true, force: true });
    this.unregister();
  }

  /** Runs `etcdctl` (API v3) against this server, with its TLS files; returns stdout. */
  etcdctl(args: readonly string[], opts: EtcdctlOptions = {}): Promise<string> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const base = [
      `--endpoints=${this.endpoint}`,
      `--dial-timeout=${opts.dialTimeoutMs ?? 2_000}ms`,
      `--command-timeout=${timeoutMs}ms`,
    ];
    if (this.tls !== undefined) {
      base.push(`--cacert=${this.tls.ca}`, `--cert=${this.tls.cert}`, `--key=${this.tls.key}`);
    }
    const [cmd, cmdArgs] =
      this.opts.netns === undefined
        ? ['etcdctl', [...base, ...args]]
        : ['ip', ['netns', 'exec', this.opts.netns, 'etcdctl', ...base, ...args]];
    return run(cmd, cmdArgs, timeoutMs + 5_000);
  }

  /** Current store revision. */
  async revision(): Promise<number> {
    const out = await this.etcdctl(['endpoint', 'status', '-w', 'json']);
    const status = JSON.parse(out) as Array<{ Status?: { header?: { revision?: number } } }>;
    const rev = status[0]?.Status?.header?.revision;
    if (typeof rev !== 'number') throw new Error(`etcd: no revision in endpoint status: ${out}`);
    return rev;
  }

  /** Compacts (physically) up to the current revision; returns that revision. */
  async compact(): Promise<number> {
    const rev = await this.revision();
    await this.etcdctl(['compaction', '--physical', String(rev)]);
    return rev;
  }

  /** Options for the `etcd3` npm client. */
  clientOptions(): Etcd3ClientOptions {
    const options: Etcd3ClientOptions = { hosts: [this.endpoint] };
    if (this.tls !== undefined) {
      options.credentials = {
        rootCertificate: readFileSync(this.tls.ca),
        certChain: readFileSync(this.tls.cert),
        privateKey: readFileSync(this.tls.key),
      };
    }
    return options;
  }

  /** The last `lines` lines of etcd's log. */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Generates a CA, a server certificate for the listen address and a client certificate. */
  async generateTls(): Promise<void> {
    if (this.serverTls === undefined) return;
    const dir = join(this.dataDir, 'tls');
    mkdirSync(dir, { recursive: true });
    const file = (name: string): string => join(dir, name);
    const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await run('openssl', ['req', '-x509', ...newKey, '-keyout', file('ca.key'), '-out', file('ca.crt'),
      '-days', '2', '-subj', '/CN=trellis-test-ca']);
    const sans = new Set(['IP:127.0.0.1', `IP:${this.host}`, 'DNS:localhost']);
    const certs: Array<[string, string, string]> = [
      // etcd's own gateway dials the server with the server certificate: it needs clientAuth too.
      ['server', this.host, `subjectAltName=${[...sans].join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`],
      ['client', 'trellis-test-client', 'extendedKeyUsage=clientAuth\n'],
    ];
    for (const [name, cn, ext] of certs) {
      writeFileSync(file(`${name}.ext`), ext);
      await run('openssl', ['req', ...newKey, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`),
        '-subj', `/CN=${cn}`]);
      await run('openssl', ['x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.crt'),
        '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', file(`${name}.ext`),
        '-out', file(`${name}.crt`)]);
    }
    this.tls = { ca: file('ca.crt'), cert: file('client.crt'), key: file('client.key') };
  }

  private args(): string[] {
    const c = this.opts.tls ? 'https' : 'http';
    const clientUrl = `${c}://${this.host}:${this.clientPort}`;
    const peerUrl = `http://${this.host}:${this.peerPort}`;
    const args = [
      '--name=trellis-test',
      `--data-dir=${join(this.dataDir, 'data')}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=trellis-test=${peerUrl}`,
      '--initial-cluster-state=new',
      '--logger=zap',
      '--log-outputs=stderr',
      // Single member: a short election timeout only makes start-up faster.
      '--heartbeat-interval=20',
      '--election-timeout=200',
    ];
    if (this.serverTls !== undefined) {
      args.push(
        `--cert-file=${this.serverTls.cert}`,
        `--key-file=${this.serverTls.key}`,
        `--trusted-ca-file=${this.serverTls.ca}`,
        '--client-cert-auth',
      );
    }
    return [...args, ...(this.opts.extraArgs ?? [])];
  }

  /**
   * One `etcdctl endpoint health` of this member: ok once it served a
   * linearizable read. With authentication on (the probe carries no user),
   * etcd refuses the read only after consensus ("user name is empty",
   * "permission denied"): that counts as healthy too, as etcdctl itself
   * counts a permission refusal.
   */
  async healthy(): Promise<{ ok: boolean; error: string }> {
    try {
      await this.etcdctl(['endpoint', 'health'], { timeoutMs: 2_000, dialTimeoutMs: 500 });
      return { ok: true, error: '' };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      return { ok: /user name is empty|permission denied/.test(error), error };
    }
  }

  private async waitHealthy(child: ChildProcess): Promise<void> {
    const timeoutMs = this.opts.startTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let lastError = '';
    let exited = false;
    const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    void exit.then(() => (exited = true));
    while (Date.now() < deadline) {
      const probe = this.healthy().then((h) => {
        lastError = h.error;
        return h.ok;
      });
      if (await Promise.race([probe, exit.then(() => false)])) return;
      if (exited || child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `etcd exited during start (code ${child.exitCode}, signal ${child.signalCode}); ` +
            `log ${this.logFile}:\n${this.logTail()}`,
        );
      }
      await delay(100);
    }
    if (isAlive(this.lastPid)) await killChild(child);
    throw new Error(
      `etcd not healthy after ${timeoutMs} ms at ${this.endpoint} (${lastError}); ` +
        `log ${this.logFile}:\n${this.logTail()}`,
    );
  }
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('ETCD_') && !k.startsWith('ETCDCTL_')) env[k] = v;
  }
  env.ETCDCTL_API = '3';
  return env;
}

function run(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<string> {
  return runCommand(cmd, args, { env: cleanEnv(), timeoutMs });
}
