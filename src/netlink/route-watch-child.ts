// The route-notification listener that RouteWatch runs as a child process.
// It joins RTNLGRP_IPV4_ROUTE and RTNLGRP_IPV6_ROUTE and forwards every
// RTM_NEWROUTE/RTM_DELROUTE message, raw, to its parent over the IPC channel.
//
// Why a separate process: when a netlink socket's receive queue overruns
// (a burst of route changes by anyone on the host), the netlink package
// aborts the process from native code, which JavaScript cannot catch. Here
// that costs only this listener: the parent sees it die, starts another and
// tells its caller to resync. Its only job is to drain the socket quickly;
// IPC writes queue in memory rather than in the kernel.
//
// Protocol: the parent passes the receive buffer size in TRELLIS_WATCH_RCVBUF;
// the child sends `{ ready: true }` once subscribed, then batches
// `{ msgs: [{ type, flags, data }] }` (data base64). It exits when the parent
// disconnects.
//
// Memory: this process is a whole Node runtime held for one socket, so it
// loads only the netlink package's socket file, by require (the package's
// index pulls in every family it knows and, imported from ESM, has each of
// its CommonJS files' exports scanned: about 10 MiB more resident).

import { createRequire } from 'node:module';
import type * as Netlink from 'netlink';

const { createNetlink } = createRequire(import.meta.url)('netlink/dist/netlink.js') as { createNetlink: typeof Netlink.createNetlink };
const NETLINK_ROUTE = 0;

const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTNLGRP_IPV4_ROUTE = 7;
const RTNLGRP_IPV6_ROUTE = 11;

if (process.send === undefined) {
  process.stderr.write('route-watch-child: must be started by RouteWatch (no IPC channel)\n');
  process.exit(2);
}
const send = process.send.bind(process);

const recvBufferSize = Number(process.env.TRELLIS_WATCH_RCVBUF ?? 4 << 20);
const socket = createNetlink(NETLINK_ROUTE, { ref: true, recvBufferSize, sendBufferSize: 0 });
socket.on('error', (err) => {
  process.stderr.write(`route-watch-child: ${err.message}\n`);
  process.exit(1);
});
socket.on('message', (msgs) => {
  const out = [];
  for (const m of msgs) {
    if (m.type === RTM_NEWROUTE || m.type === RTM_DELROUTE) {
      out.push({ type: m.type, flags: m.flags, data: m.data.toString('base64') });
    }
  }
  if (out.length > 0) send({ msgs: out });
});
socket.addMembership(RTNLGRP_IPV4_ROUTE);
socket.addMembership(RTNLGRP_IPV6_ROUTE);
process.on('disconnect', () => {
  socket.close();
  process.exit(0);
});
send({ ready: true });
