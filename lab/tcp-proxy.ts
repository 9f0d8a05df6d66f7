// A TCP proxy on loopback that a test can cut and restore, to simulate a
// network partition between a client and a server without stopping either.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { onTeardown, type Teardown } from './cleanup.js';

export interface TcpProxy {
  readonly port: number;
  /** Drop every open connection and refuse new ones. */
  cut(): void;
  /** Accept connections again. */
  restore(): void;
  close(): Promise<void>;
}

/**
 * Pipes `a` and `b` into each other, both tracked in `sockets` while open;
 * when either ends or fails, both are destroyed and forgotten.
 */
export function splice(a: Socket, b: Socket, sockets: Set<Socket>): void {
  sockets.add(a);
  sockets.add(b);
  const drop = (): void => {
    a.destroy();
    b.destroy();
    sockets.delete(a);
    sockets.delete(b);
  };
  a.on('error', drop).on('close', drop);
  b.on('error', drop).on('close', drop);
  // Without TCP_NODELAY a relay holds small writes back (Nagle against the peer's delayed ACK): tens of ms per round trip.
  a.setNoDelay(true);
  b.setNoDelay(true);
  a.pipe(b);
  b.pipe(a);
}

export async function startTcpProxy(t: Teardown | undefined, target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    splice(client, connect(target.port, target.host), sockets);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  const proxy: TcpProxy = {
    port: address.port,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      open = true;
    },
    close() {
      proxy.cut();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  onTeardown(t, () => proxy.close());
  return proxy;
}
