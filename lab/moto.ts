// Throwaway moto_server (fake AWS APIs, EC2 among them, and the instance
// metadata paths) for the EC2 route-table adapter tests. Each server has its
// own reserved port and a temp directory for its log; `reset()` wipes its
// state between cases. By default it listens on 127.0.0.1; with `netns` and
// `host` it runs inside a lab namespace on a lab address (like etcd.ts), and
// this process reaches it through a forward (`localEndpoint`).
//
// Invariants: the server is stopped by its PID and its directory removed when
// the test ends (with `t`) or at the latest when the process ends.

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { onTeardown, ownedTempDir, registerCleanup, type Teardown } from './cleanup.js';
import { delay, dieWithParent, killChild, killSync, stopChild, which } from './pids.js';
import { freePort } from './ports.js';
import { intoNamespace, type NsForward } from './ns-forward.js';
import { ROOT } from './trellis.js';

/**
 * The moto_server executable: on PATH, else in the project's virtual
 * environment (.venv/, made by .ci/install-packages where the system Python
 * refuses pip installs); undefined when neither has it.
 */
export function motoServerPath(): string | undefined {
  const found = which('moto_server');
  if (found !== undefined) return found;
  const inVenv = join(ROOT, '.venv', 'bin', 'moto_server');
  try {
    accessSync(inVenv, constants.X_OK);
    return inVenv;
  } catch {
    return undefined;
  }
}

/** `false` when moto_server can be found (motoServerPath), else the reason to skip. */
export function needMoto(): string | false {
  return motoServerPath() === undefined
    ? "needs moto_server on PATH or in .venv/ (bash .ci/install-packages installs it)"
    : false;
}

export interface MotoOptions {
  /** How long to wait for the server to answer; default 30 s. */
  startTimeoutMs?: number;
  /** Run inside this network namespace (full name, e.g. `Netns.name`). */
  netns?: string;
  /** Listen address; default 127.0.0.1. With `netns`, an address of that namespace. */
  host?: string;
}

/** Client settings for `@aws-sdk/client-ec2` (`new EC2Client(moto.clientConfig())`). */
export interface MotoClientConfig {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

export interface MotoServer {
  /** Where it listens, e.g. `http://127.0.0.1:40123` or `http://198.18.1.1:40123` in a namespace. */
  readonly endpoint: string;
  /** How this process reaches it: `endpoint`, or a loopback forward into the namespace. */
  readonly localEndpoint: string;
  readonly port: number;
  readonly pid: number;
  readonly logFile: string;
  /** Fake-credential client settings (for this process), region us-east-1. */
  clientConfig(): MotoClientConfig;
  /** Wipes all state (POST /moto-api/reset). */
  reset(): Promise<void>;
  /** SIGTERM by PID, SIGKILL after a timeout; removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** Starts moto_server; with `t`, stops it when the test ends. */
export async function startMoto(t?: Teardown, opts: MotoOptions = {}): Promise<MotoServer> {
  const port = await freePort();
  const dir = ownedTempDir('moto');
  const logFile = join(dir, 'moto.log');
  const host = opts.host ?? '127.0.0.1';
  const endpoint = `http://${host}:${port}`;
  let localEndpoint = endpoint;
  let forward: NsForward | undefined;
  const log = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    const server = motoServerPath() ?? 'moto_server';
    const serverArgs = ['-H', host, '-p', String(port)];
    const [cmd, args] =
      opts.netns === undefined ? dieWithParent(server, serverArgs) : dieWithParent('ip', ['netns', 'exec', opts.netns, server, ...serverArgs]);
    child = spawn(cmd, args, { stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  const unregister = registerCleanup(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) killSync(child.pid);
    rmSync(dir, { recursive: true, force: true });
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await forward?.close();
    await stopChild(child, 5_000);
    rmSync(dir, { recursive: true, force: true });
    unregister();
  };
  onTeardown(t, stop);

  const tail = (): string => {
    try {
      return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-20).join('\n');
    } catch {
      return '(no log)';
    }
  };
  try {
    const spawnError = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', resolve);
    });
    if (spawnError !== undefined) throw new Error(`moto_server: cannot spawn: ${spawnError.message}`);
    if (opts.netns !== undefined) {
      forward = await intoNamespace(undefined, opts.netns, host, port);
      localEndpoint = `http://127.0.0.1:${forward.port}`;
    }
    const timeoutMs = opts.startTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`moto_server exited during start (code ${child.exitCode}); log:\n${tail()}`);
      }
      const status = await httpStatus('GET', `${localEndpoint}/moto-api/`).catch(() => 0);
      if (status === 200) break;
      if (Date.now() > deadline) {
        await killChild(child);
        throw new Error(`moto_server not answering after ${timeoutMs} ms at ${endpoint} (${localEndpoint} here); log:\n${tail()}`);
      }
      await delay(100);
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    endpoint,
    localEndpoint,
    port,
    pid: child.pid ?? 0,
    logFile,
    clientConfig: () => ({
      endpoint: localEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    }),
    reset: async () => {
      const status = await httpStatus('POST', `${localEndpoint}/moto-api/reset`);
      if (status !== 200) throw new Error(`moto reset: HTTP ${status}`);
    },
    stop,
  };
}

function httpStatus(method: string, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, timeout: 5_000 }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end();
  });
}
