// TCP forwarding across the boundary of a network namespace, for servers a
// test runs on one side and clients on the other (moto in a lab's router seen
// from the test process; the test process's EC2 proxy seen from the lab).
// A namespace cannot reach another's addresses, but the file system is
// shared, so each crossing goes through a Unix socket in a temp directory:
//   inside the namespace  a small node child (`ip netns exec`) listening on
//                         one side and connecting to the other;
//   in this process       a net server doing the same.
// `intoNamespace`: 127.0.0.1:<port> here → <host>:<port> inside the namespace.
// `fromNamespace`: <host>:<port> inside the namespace → 127.0.0.1:<port> here.
// Invariants: the child is killed by its PID and the directory removed when
// the test ends (with `t`) or at the latest when the process ends; only
// loopback and addresses of the given namespace are used.

import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { onTeardown, ownedTempDir, registerCleanup, type Teardown } from './cleanup.js';
import { dieWithParent, killSync, stopChild, withoutNodeOptions } from './pids.js';
import { splice } from './tcp-proxy.js';

/** The child: node -e SCRIPT <listen> <connect>, each "unix:<path>" or "tcp:<host>:<port>". */
const SCRIPT = `
const net = require('net');
const where = (spec) => spec.startsWith('unix:') ? { path: spec.slice(5) } : { host: spec.split(':')[1], port: Number(spec.split(':')[2]) };
const [listen, target] = process.argv.slice(1);
const server = net.createServer((c) => {
  const u = net.connect(where(target));
  const drop = () => { c.destroy(); u.destroy(); };
  c.on('error', drop).on('close', drop); u.on('error', drop).on('close', drop);
  c.setNoDelay(true); u.setNoDelay(true);
  c.pipe(u); u.pipe(c);
});
const l = where(listen);
server.listen(l.path !== undefined ? l.path : { host: l.host, port: l.port }, () => process.stdout.write('ready\\n'));
server.on('error', (e) => { process.stderr.write(String(e) + '\\n'); process.exit(1); });
`;

export interface NsForward {
  /** The loopback port here (intoNamespace) or the port inside the namespace (fromNamespace). */
  readonly port: number;
  close(): Promise<void>;
}

function pipeServer(target: () => Socket, sockets: Set<Socket>): Server {
  return createServer((c) => splice(c, target(), sockets));
}

async function startChild(netns: string, listen: string, target: string): Promise<ChildProcess> {
  const [cmd, args] = dieWithParent(...withoutNodeOptions('ip', ['netns', 'exec', netns, process.execPath, '-e', SCRIPT, listen, target]));
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`namespace forwarder exited (${code}): ${stderr.trim()}`)));
    child.once('error', reject);
  });
  return child;
}

interface Parts {
  childListen: string;
  childTarget: string;
  local: Server;
  localListen: () => Promise<number>;
}

async function forward(t: Teardown | undefined, build: (sock: string, sockets: Set<Socket>) => Parts, netns: string, fixedPort?: number): Promise<NsForward> {
  const dir = ownedTempDir('nsfwd');
  const sock = join(dir, 'fwd.sock');
  const sockets = new Set<Socket>();
  const parts = build(sock, sockets);
  let child: ChildProcess | undefined;
  const unregister = registerCleanup(() => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) killSync(child.pid);
    rmSync(dir, { recursive: true, force: true });
  });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    if (child !== undefined) await stopChild(child, 3_000);
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => parts.local.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
    unregister();
  };
  onTeardown(t, close);
  try {
    const port = await parts.localListen();
    child = await startChild(netns, parts.childListen, parts.childTarget);
    return { port: fixedPort ?? port, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * 127.0.0.1:<returned port> here reaches `host:port` inside `netns`. The local
 * port is `localPort` when given (rejects when it is taken), else any free one.
 */
export async function intoNamespace(t: Teardown | undefined, netns: string, host: string, port: number, localPort = 0): Promise<NsForward> {
  return forward(
    t,
    (sock, sockets) => {
      const local = pipeServer(() => connect({ path: sock }), sockets);
      return {
        childListen: `unix:${sock}`,
        childTarget: `tcp:${host}:${port}`,
        local,
        localListen: () =>
          new Promise<number>((resolve, reject) => {
            local.once('error', reject);
            local.listen(localPort, '127.0.0.1', () => resolve((local.address() as { port: number }).port));
          }),
      };
    },
    netns,
  );
}

/** `host:port` inside `netns` reaches 127.0.0.1:`localPort` here. */
export async function fromNamespace(t: Teardown | undefined, netns: string, host: string, port: number, localPort: number): Promise<NsForward> {
  return forward(
    t,
    (sock, sockets) => {
      const local = pipeServer(() => connect({ host: '127.0.0.1', port: localPort }), sockets);
      return {
        childListen: `tcp:${host}:${port}`,
        childTarget: `unix:${sock}`,
        local,
        localListen: () => new Promise<number>((resolve) => local.listen(sock, () => resolve(port))),
      };
    },
    netns,
    port,
  );
}
