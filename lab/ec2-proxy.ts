// A counting HTTP proxy in front of moto for EC2 tests and benchmarks: every
// request is forwarded to `upstream` and logged with its EC2 `Action` (and
// route and instance parameters); on demand it answers a configurable share of calls with
// throttling instead, as EC2 does: HTTP 503 and the EC2 XML error body with
// code RequestLimitExceeded.
// Throttling is deterministic: with share s, call n (counting only calls it
// may throttle) is refused when floor(n·s) > floor((n−1)·s), so a share of
// 0.5 refuses every second call and the counts in a test are exact.
// Or, as EC2 does, by token buckets (`bucket`): the mutating route actions
// share one bucket (burst 50, 5 per second in EC2), and a call that finds it
// empty is refused; refused calls take no token.
// Paging (`pageRouteTables`): moto answers DescribeRouteTables in one page;
// the proxy cuts moto's answer into pages of at most n tables (and of the
// request's MaxResults) with a NextToken, as EC2 does, so paging is tested.
// Invariants: listens on 127.0.0.1 only; closed when the test ends (with `t`).

import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { onTeardown, type Teardown } from './cleanup.js';
import { TokenBucket, type BucketSettings } from '../src/core/token-bucket.js';

export interface ProxiedCall {
  /** When the answer came (moto's, or the proxy's refusal). */
  readonly at: number;
  /** When the request arrived (a bucket's token is taken then). */
  readonly arrived: number;
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
  /** Refuse `actions` (default: the route writes) beyond a token bucket, as EC2 does; undefined turns it off. */
  bucket(settings: BucketSettings | undefined, actions?: readonly string[]): void;
  /** Answer DescribeRouteTables in pages of at most `size` tables (0: one page, as moto does). */
  pageRouteTables(size: number): void;
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
  for (const key of ['RouteTableId', 'DestinationCidrBlock', 'InstanceId', 'NetworkInterfaceId', 'MaxResults', 'NextToken']) {
    const v = form.get(key) ?? query.get(key);
    if (v !== null) params[key] = v;
  }
  // DescribeInstances names its instances InstanceId.1, InstanceId.2…
  for (const [key, v] of [...query, ...form]) if (/^InstanceId\.\d+$/.test(key)) params[key] = v;
  return { action: form.get('Action') ?? query.get('Action') ?? `${url.split('?')[0]}`, params };
}

/** The top-level `<item>` elements of `<routeTableSet>` in a DescribeRouteTables answer, and what surrounds them. */
function splitTables(xml: string): { head: string; items: string[]; tail: string } | undefined {
  const open = xml.indexOf('<routeTableSet>');
  const close = xml.lastIndexOf('</routeTableSet>');
  if (open < 0 || close < 0) return undefined;
  const start = open + '<routeTableSet>'.length;
  const items: string[] = [];
  const tag = /<(\/?)item(\/?)>/g;
  tag.lastIndex = start;
  let depth = 0;
  let from = -1;
  for (let m = tag.exec(xml); m !== null && m.index < close; m = tag.exec(xml)) {
    if (m[2] === '/') {
      if (depth === 0) items.push(m[0]);
      continue;
    }
    if (m[1] === '') {
      if (depth === 0) from = m.index;
      depth++;
    } else if (--depth === 0) items.push(xml.slice(from, m.index + m[0].length));
  }
  return { head: xml.slice(0, start), items, tail: xml.slice(close) };
}

/** One page of a DescribeRouteTables answer: tables [offset, offset + size), and a NextToken when more follow. */
function pageOf(xml: string, offset: number, size: number): string {
  const parts = splitTables(xml);
  if (parts === undefined) return xml;
  const page = parts.items.slice(offset, offset + size);
  const next = offset + size < parts.items.length ? `<nextToken>page-${offset + size}</nextToken>` : '';
  const rootClose = parts.tail.lastIndexOf('</');
  const tail = next === '' ? parts.tail : `${parts.tail.slice(0, rootClose)}${next}${parts.tail.slice(rootClose)}`;
  return `${parts.head}${page.join('')}${tail}`;
}

const upstreamOk = (url: string): boolean => !url.startsWith('/moto-api');

/** Starts the proxy on 127.0.0.1 (a free port) in front of `upstream` (e.g. moto's local endpoint). */
export async function startEc2Proxy(t: Teardown | undefined, upstream: string): Promise<Ec2Proxy> {
  const target = new URL(upstream);
  const calls: ProxiedCall[] = [];
  let share = 0;
  let only: ReadonlySet<string> | undefined;
  let eligible = 0;
  let seq = 0;
  let pageSize = 0;
  let limiter: { bucket: TokenBucket; actions: ReadonlySet<string> } | undefined;
  const sockets = new Set<Socket>();

  const shouldThrottle = (action: string): boolean => {
    if (limiter !== undefined && limiter.actions.has(action) && !limiter.bucket.tryTake()) return true;
    if (share <= 0 || (only !== undefined && !only.has(action))) return false;
    eligible++;
    return Math.floor(eligible * share) > Math.floor((eligible - 1) * share);
  };

  const connections = new WeakMap<Socket, number>();
  let connectionSeq = 0;
  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    const arrived = Date.now();
    const { action, params } = actionOf(req.url ?? '/', body.toString('utf8'));
    const connection = connections.get(req.socket) ?? 0;
    if (shouldThrottle(action)) {
      calls.push({ at: Date.now(), arrived, connection, action, params, throttled: true, status: 503 });
      res.writeHead(503, { 'content-type': 'text/xml;charset=UTF-8' }).end(THROTTLE_BODY(`proxy-${++seq}`));
      return;
    }
    const paged = pageSize > 0 && action === 'DescribeRouteTables' && (upstreamOk(req.url ?? '/'));
    const up = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (upRes) => {
        calls.push({ at: Date.now(), arrived, connection, action, params, throttled: false, status: upRes.statusCode ?? 0 });
        if (!paged || upRes.statusCode !== 200) {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          const offset = /^page-(\d+)$/.exec(params.NextToken ?? '')?.[1];
          const asked = Number(params.MaxResults ?? pageSize);
          const out = pageOf(Buffer.concat(chunks).toString('utf8'), offset === undefined ? 0 : Number(offset), Math.min(pageSize, asked > 0 ? asked : pageSize));
          const headers = { ...upRes.headers };
          delete headers['content-length'];
          delete headers['transfer-encoding'];
          res.writeHead(200, { ...headers, 'content-length': Buffer.byteLength(out) }).end(out);
        });
      },
    );
    up.on('error', (err) => {
      calls.push({ at: Date.now(), arrived, connection, action, params, throttled: false, status: 502 });
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
    bucket(settings, actions) {
      limiter = settings === undefined ? undefined : { bucket: new TokenBucket(settings, Date.now), actions: new Set(actions ?? ROUTE_WRITES) };
    },
    pageRouteTables(size) {
      pageSize = Math.max(0, Math.floor(size));
    },
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
