// The kernel-route adapter: lists, installs, replaces and removes routes over
// rtnetlink (IPv4 and IPv6, any table), applies a RouteDiff with bounded
// concurrency, and watches route notifications. It works on the network
// namespace of the process that opens it.
//
// Protocol number: Trellis stamps its routes with rtm_protocol 84
// (TRELLIS_RTPROT, 0x54, "T"). It is not reserved in iproute2's rt_protos
// (0-4, 8-16, 18, 42, 99, 186-192), not used by the daemons commonly met on
// the same hosts (FRR 186-198, BIRD 12, Zebra 11, Calico's BIRD 80,
// kube-router 17, keepalived 18, Babel 42, Open/R 99), and above
// RTPROT_STATIC (4), so the kernel treats it as opaque and never creates or
// flushes routes with it. It is configurable per programmer.
//
// Invariants:
// * Never more than `maxInFlight` (default 64) requests outstanding on the
//   request socket, across all callers: the netlink package aborts the whole
//   process from native code when a socket's receive queue overruns. Sockets
//   get a 4 MiB receive buffer. Dumps use their own socket, one at a time, so
//   a dump's parts never interleave with acknowledgements.
// * Ownership: add/replace install routes with our protocol only; remove
//   refuses a route of another protocol and the kernel is asked to match the
//   protocol too, so a foreign route is never deleted.
// * Removing a route that is already gone (ESRCH, or ENODEV: its device is
//   gone and the route with it) is success. Other refusals become
//   TrellisErrors (see netlink-errors.ts) naming the route.

import { createRtNetlink, FlagsNew, type RtNetlinkSocket } from 'netlink';
import { ErrorCode, TrellisError } from '../errors.js';
import { describeRoute, RT_TABLE_MAIN, type KernelRoute, type RouteDiff } from '../core/route.js';
import { Limiter } from './limiter.js';
import { dumpLinks, LinkCache } from './links.js';
import { netlinkErrno, toTrellisError } from './netlink-errors.js';
import { AF_INET, AF_INET6, decodeRoute, encodeRoute } from './route-codec.js';
import { RouteWatch, type RouteEvent } from './route-watch.js';

/** Trellis's rtm_protocol (see the module comment for why 84). */
export const TRELLIS_RTPROT = 84;
export const DEFAULT_MAX_IN_FLIGHT = 64;
export const DEFAULT_RECV_BUFFER = 4 << 20;
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface RouteProgrammerOptions {
  /** rtm_protocol stamped on our routes (default TRELLIS_RTPROT). */
  protocol?: number;
  /** Most requests outstanding at once (1..64, default 64). */
  maxInFlight?: number;
  /** SO_RCVBUF of every socket in bytes (default 4 MiB). */
  recvBufferSize?: number;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
}

export interface RouteFilter {
  family?: 4 | 6;
  /** Routing table id (main = 254). */
  table: number;
  /** Only routes with this rtm_protocol. */
  protocol?: number;
}

export type ApplyOp = 'add' | 'replace' | 'remove';

export interface ApplyResult {
  added: number;
  replaced: number;
  removed: number;
  /** Removals of routes that were already gone. */
  alreadyGone: number;
  errors: Array<{ op: ApplyOp; route: KernelRoute; error: TrellisError }>;
}

export interface ProgrammerStats {
  /** Route requests sent (add, replace, remove, retries included). */
  requests: number;
  /** Most requests ever outstanding at once. */
  peakInFlight: number;
}

const RTM_NEWROUTE_FLAGS = { add: FlagsNew.CREATE | FlagsNew.EXCL, replace: FlagsNew.CREATE | FlagsNew.REPLACE };

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new TrellisError(ErrorCode.Config, `route programmer: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

export class RouteProgrammer {
  readonly protocol: number;
  private readonly timeoutMs: number;
  private readonly recvBufferSize: number;
  private readonly requests: RtNetlinkSocket;
  private readonly dumps: RtNetlinkSocket;
  private readonly inFlight: Limiter;
  private readonly dumpLock = new Limiter(1);
  private readonly links: LinkCache;
  private readonly watches = new Set<RouteWatch>();
  private readonly localPort: number;
  private sent = 0;
  private closed = false;

  constructor(opts: RouteProgrammerOptions = {}) {
    this.protocol = opts.protocol ?? TRELLIS_RTPROT;
    if (!Number.isInteger(this.protocol) || this.protocol <= 4 || this.protocol > 255) {
      throw new TrellisError(ErrorCode.Config, `route protocol must be 5..255 (0-4 belong to the kernel), got ${this.protocol}`);
    }
    this.timeoutMs = positiveInt('timeoutMs', opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.recvBufferSize = positiveInt('recvBufferSize', opts.recvBufferSize ?? DEFAULT_RECV_BUFFER);
    const window = positiveInt('maxInFlight', opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    if (window > DEFAULT_MAX_IN_FLIGHT) {
      throw new TrellisError(ErrorCode.Config, `route programmer: maxInFlight is at most ${DEFAULT_MAX_IN_FLIGHT} (a netlink overrun aborts the process), got ${window}`);
    }
    this.inFlight = new Limiter(window);
    this.requests = this.openSocket();
    try {
      this.dumps = this.openSocket();
    } catch (err) {
      this.requests.socket.close();
      throw err;
    }
    // Saves the package a native address() call per message.
    this.localPort = this.requests.socket.address().port;
    this.links = new LinkCache(() => this.dumpLock.run(() => dumpLinks(this.dumps)));
  }

  private openSocket(): RtNetlinkSocket {
    let socket: RtNetlinkSocket;
    try {
      socket = createRtNetlink({ recvBufferSize: this.recvBufferSize, sendBufferSize: 0 });
    } catch (err) {
      throw new TrellisError(ErrorCode.Kernel, `cannot open an rtnetlink socket: ${(err as Error).message}`, {
        cause: err,
        details: { errno: netlinkErrno(err) ?? 'UNKNOWN', op: 'open' },
      });
    }
    // Socket errors also reject the pending requests; do not let them throw.
    socket.socket.on('error', () => undefined);
    return socket;
  }

  get stats(): ProgrammerStats {
    return { requests: this.sent, peakInFlight: this.inFlight.peak };
  }

  private checkOpen(): void {
    if (this.closed) throw new TrellisError(ErrorCode.Internal, 'route programmer is closed');
  }

  /** Routes of one table (and optionally one family and protocol), as the kernel holds them. */
  async list(filter: RouteFilter): Promise<KernelRoute[]> {
    this.checkOpen();
    const family = filter.family === 4 ? AF_INET : filter.family === 6 ? AF_INET6 : 0;
    const subject = `routes of table ${filter.table}`;
    let msgs;
    try {
      msgs = await this.dumpLock.run(() => this.dumps.getRoutes({ family }, undefined, { timeout: this.timeoutMs }));
    } catch (err) {
      throw toTrellisError(err, 'dump', subject);
    }
    const decode = (m: (typeof msgs)[number]): KernelRoute | undefined =>
      decodeRoute(m, (i) => this.links.cachedName(i));
    const matches = (r: KernelRoute | undefined): r is KernelRoute =>
      r !== undefined &&
      (filter.family === undefined || r.dst.family === filter.family) &&
      (filter.protocol === undefined || r.protocol === filter.protocol);
    const picked = msgs.filter((m) => (m.attrs.table ?? m.data.table) === filter.table);
    let routes = picked.map(decode).filter(matches);
    if (routes.some((r) => r.ifIndex !== undefined && r.ifName === undefined)) {
      try {
        await this.links.refresh();
      } catch (err) {
        throw toTrellisError(err, 'dump', 'links');
      }
      routes = picked.map(decode).filter(matches);
    }
    return routes;
  }

  /** Installs `route` (with our protocol); fails with E_CONFLICT/EEXIST when its key is taken. */
  async add(route: KernelRoute): Promise<void> {
    await this.install('add', route);
  }

  /** Installs `route` (with our protocol), replacing whatever route holds its key. */
  async replace(route: KernelRoute): Promise<void> {
    await this.install('replace', route);
  }

  /** Removes our `route`; resolves false when it was already gone. */
  async remove(route: KernelRoute): Promise<boolean> {
    this.checkOpen();
    if (route.protocol !== this.protocol) {
      throw new TrellisError(ErrorCode.Internal, `refusing to remove a route of protocol ${route.protocol}: ${describeRoute(route)}`, {
        details: { route: describeRoute(route), protocol: route.protocol },
      });
    }
    try {
      await this.send('del', route);
      return true;
    } catch (err) {
      // ENODEV: the device is gone (by index from the kernel, or by name
      // here), and its routes went with it.
      const errno = netlinkErrno(err);
      if (errno === 'ESRCH' || errno === 'ENODEV') return false;
      throw toTrellisError(err, 'remove', describeRoute(route));
    }
  }

  private async install(op: 'add' | 'replace', input: KernelRoute): Promise<void> {
    this.checkOpen();
    const route = input.protocol === this.protocol ? input : { ...input, protocol: this.protocol };
    try {
      await this.send(op, route);
    } catch (err) {
      // A device re-created under the same name has a new index: re-read once.
      const stale = !(err instanceof TrellisError) && netlinkErrno(err) === 'ENODEV';
      if (stale && route.ifIndex === undefined && route.ifName !== undefined) {
        await this.links.refresh().catch(() => undefined);
        try {
          await this.send(op, route);
          return;
        } catch (again) {
          throw toTrellisError(again, op, describeRoute(route));
        }
      }
      throw toTrellisError(err, op, describeRoute(route));
    }
  }

  private async deviceIndex(route: KernelRoute): Promise<number | undefined> {
    if (route.type !== 'unicast') return undefined;
    if (route.ifIndex !== undefined) return route.ifIndex;
    if (route.ifName === undefined) return undefined;
    const index = await this.links.indexOf(route.ifName);
    if (index === undefined) {
      throw new TrellisError(ErrorCode.NotFound, `netlink route ${describeRoute(route)}: ENODEV (no device named ${route.ifName})`, {
        details: { errno: 'ENODEV', route: describeRoute(route), ifName: route.ifName },
      });
    }
    return index;
  }

  private async send(op: 'add' | 'replace' | 'del', route: KernelRoute): Promise<void> {
    const ifIndex = await this.deviceIndex(route);
    const { data, attrs } = encodeRoute(route, op === 'del' ? 'del' : 'new', ifIndex);
    await this.inFlight.run(() => {
      this.sent++;
      const options = { timeout: this.timeoutMs, localPort: this.localPort };
      return op === 'del'
        ? this.requests.delRoute(data, attrs, options)
        : this.requests.newRoute(data, attrs, { ...options, flags: RTM_NEWROUTE_FLAGS[op] });
    });
  }

  /**
   * Applies a diff: replacements and additions first, then removals (make
   * before break). Every route is attempted; failures are collected, not
   * thrown. Conflicts in the diff are not applied.
   */
  async apply(diff: Pick<RouteDiff, 'add' | 'replace' | 'remove'>): Promise<ApplyResult> {
    this.checkOpen();
    const result: ApplyResult = { added: 0, replaced: 0, removed: 0, alreadyGone: 0, errors: [] };
    const work: Array<[ApplyOp, KernelRoute]> = [
      ...diff.replace.map((r): [ApplyOp, KernelRoute] => ['replace', r]),
      ...diff.add.map((r): [ApplyOp, KernelRoute] => ['add', r]),
    ];
    const one = async ([op, route]: [ApplyOp, KernelRoute]): Promise<void> => {
      try {
        if (op === 'add') {
          await this.add(route);
          result.added++;
        } else if (op === 'replace') {
          await this.replace(route);
          result.replaced++;
        } else if (await this.remove(route)) result.removed++;
        else result.alreadyGone++;
      } catch (err) {
        result.errors.push({ op, route, error: toTrellisError(err, op, describeRoute(route)) });
      }
    };
    await this.pool(work, one);
    await this.pool(
      diff.remove.map((r): [ApplyOp, KernelRoute] => ['remove', r]),
      one,
    );
    return result;
  }

  /**
   * Runs `fn` over `items` with as many workers as the in-flight window, so
   * only a window's worth of requests is encoded and waiting at any time.
   */
  private async pool<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const item = items[next++] as T;
        await fn(item);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.inFlight.max, items.length) }, worker));
  }

  /**
   * Reports every IPv4/IPv6 route added or deleted in this namespace, by
   * anyone, and `resync` when events may have been lost. Resolves once the
   * subscription is live. See route-watch.ts.
   */
  async watch(onChange: (event: RouteEvent) => void): Promise<RouteWatch> {
    this.checkOpen();
    const watch = new RouteWatch(onChange, {
      recvBufferSize: this.recvBufferSize,
      nameOf: (i) => this.links.nameOf(i).catch(() => undefined),
      onClose: () => this.watches.delete(watch),
    });
    this.watches.add(watch);
    try {
      await watch.start();
    } catch (err) {
      watch.close();
      throw err;
    }
    return watch;
  }

  /** Closes the sockets and stops every watch. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watches]) w.close();
    this.requests.socket.close();
    this.dumps.socket.close();
  }
}

export { RT_TABLE_MAIN };
export type { RouteEvent };
