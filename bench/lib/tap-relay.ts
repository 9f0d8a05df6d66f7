// A loopback TCP relay to 127.0.0.1:port that lets its owner see what the
// upstream sends back: each new connection asks `onConnection` for a handler,
// which is given every chunk from upstream (in order, from the first byte).
// close() destroys every open connection and stops listening.

import { connect, createServer, type Socket } from 'node:net';
import { splice } from '../../lab/tcp-proxy.js';

export interface TapRelay {
  readonly port: number;
  close(): Promise<void>;
}

export async function tapRelay(port: number, onConnection: () => (fromUpstream: Buffer) => void): Promise<TapRelay> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const up = connect(port, '127.0.0.1');
    up.on('data', onConnection());
    splice(client, up, sockets);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
