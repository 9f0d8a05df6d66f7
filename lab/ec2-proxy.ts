// A counting HTTP proxy in front of moto for EC2 tests and benchmarks: every
// request is forwarded to `upstream` and logged with its EC2 `Action` (and
// route parameters); on demand it answers a configurable share of calls with
// throttling instead, as EC2 does: HTTP 503 and the EC2 XML error body with
// code RequestLimitExceeded.
// Throttling is deterministic: with share s, call n (counting only calls it
// may throttle) is refused when floor(n·s) > floor((n−1)·s), so a share of
// 0.5 refuses every second call and the counts in a test are exact.
// Invariants: listens on 127.0.0.1 only; closed when the test ends (with `t`).

import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { onTeardown, type Teardown } from './cleanup.js';

export interface ProxiedCall {
  readonly at: number;
  /** Number of the client connection the call came on (a client's calls share one). */
  readonly connection: number;
  readonly action: string;
  readonly params: Readonly<Record<string, string>>;
  readonly throttled: boolean;
  readonly status: number;
}

export interface Ec2Proxy {
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  readonly calls: readonly ProxiedCall[];
  /** Calls since the last reset, oldest first. */
  recent(): ProxiedCall[];
  /** Calls per action since the last reset (throttled ones included). */
  counts(): Record<string, number>;
  /** Calls answered with RequestLimitExceeded since the last reset, per action. */
  throttledCounts(): Record<string, number>;
  /** CreateRoute + ReplaceRoute + DeleteRoute since the last reset (or since `sinceMs`). */
  routeWrites(sinceMs?: number): ProxiedCall[];
  /** Throttle this share (0..1) of calls, optionally only of these actions. */
  throttle(share: number, actions?: readonly string[]): void;
  resetCounts(): void;
  close(): Promise<void>;
}

export const ROUTE_WRITES = new Set(['CreateRoute', 'ReplaceRoute', 'DeleteRoute']);

const THROTTLE_BODY = (id: string): string =>
  '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>' +
  `<Message>Request limit exceeded.</Message></Error></Errors><RequestID>${id}</RequestID></Response>`;

function actionOf(url: string, body: string): { action: string; params: Record<string, string> } {
  const query = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
  const form = new URLSearchParams(body);
  const params: Record<string, string> = {};
  for (const key of ['RouteTableId', 'DestinationCidrBlock', 'InstanceId']) {
    const v = form.get(key) ?? query.get(key);
    if (v !== null) params[key] = v;
  }
  return { action: form.get('Action') ?? query.get('Action') ?? `${url.split('?')[0]}`, params };
}

/** Starts the proxy on 127.0.0.1 (a free port) in front of `upstream` (e.g. moto's local endpoint). */
export async function startEc2Proxy(t: Teardown | undefined, upstream: string): Promise<Ec2Proxy> {
  const target = new URL(upstream);
  const calls: ProxiedCall[] = [];
  let share = 0;
  let only: ReadonlySet<string> | undefined;
  let eligible = 0;
  let seq = 0;
  const sockets = new Set<Socket>();

  const shouldThrottle = (action: string): boolean => {
    if (share <= 0 || (only !== undefined && !only.has(action))) return false;
    eligible++;
    return Math.floor(eligible * share) > Math.floor((eligible - 1) * share);
  };

  const connections = new WeakMap<Socket, number>();
  let connectionSeq = 0;
  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    const { action, params } = actionOf(req.url ?? '/', body.toString('utf8'));
    const connection = connections.get(req.socket) ?? 0;
    if (shouldThrottle(action)) {
      calls.push({ at: Date.now(), connection, action, params, throttled: true, status: 503 });
      res.writeHead(503, { 'content-type': 'text/xml;charset=UTF-8' }).end(THROTTLE_BODY(`proxy-${++seq}`));
      return;
    }
    const up = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (upRes) => {
        calls.push({ at: Date.now(), connection, action, params, throttled: false, status: upRes.statusCode ?? 0 });
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', (err) => {
      calls.push({ at: Date.now(), connection, action, params, throttled: false, status: 502 });
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy: ${err.message}\n`);
    });
    up.end(body);
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  });
  server.on('connection', (s) => {
    connections.set(s, ++connectionSeq);
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  let mark = 0;
  const since = (): ProxiedCall[] => calls.slice(mark);
  const tally = (list: readonly ProxiedCall[]): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const c of list) out[c.action] = (out[c.action] ?? 0) + 1;
    return out;
  };
  let closed = false;
  const proxy: Ec2Proxy = {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    recent: since,
    counts: () => tally(since()),
    throttledCounts: () => tally(since().filter((c) => c.throttled)),
    routeWrites: (sinceMs) => since().filter((c) => ROUTE_WRITES.has(c.action) && !c.throttled && (sinceMs === undefined || c.at >= sinceMs)),
    throttle(s, actions) {
      share = Math.max(0, Math.min(1, s));
      only = actions === undefined ? undefined : new Set(actions);
      eligible = 0;
    },
    resetCounts() {
      mark = calls.length;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  onTeardown(t, () => proxy.close());
  return proxy;
}
