// The local IPAM API on a unix socket (proto/trellis/v1/ipam_api.proto),
// used by the trellis CNI plugin.
//
// Invariants:
//  * An address is returned only after its allocation is in the block's
//    record in etcd (the allocator's compare-and-swap) and after the block is
//    in this node's published advertisement, so the pod is routable from its
//    first packet.
//  * Allocation is idempotent per (container id, interface); release of an
//    unknown pair succeeds and returns no address.
//  * The socket is created mode 0600 in a 0755 directory; a stale socket file
//    left by a killed daemon is replaced.
//  * Every answer is built as a complete object of its generated message type
//    (Fields<T>: a field renamed in the proto is a compile error here) and
//    sent with every field, default values included, so the plugin can
//    require each field (cni-plugin/api-wire.ts).
//  * A call is refused at once while the lease is unconfirmed or lost, and
//    answered E_UNAVAILABLE once it has waited etcdTimeoutMs with etcd in
//    that state (4 × etcdTimeoutMs at most while etcd still confirms the
//    lease: busy, not gone); the etcd work is left to finish in the
//    background (allocate and release are idempotent, the retried call finds
//    its result). Every etcd client failure is E_UNAVAILABLE: the plugin
//    answers the runtime 11 (try again later), never 106.
//  * Metrics (daemon/ipam-metrics.ts): each allocate and release is counted and
//    timed; usage gauges come from refreshUsage(), run on a timer, never per scrape.

import { chmodSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { fromJsonString, toJsonString, create, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import { ErrorCode, TrellisError } from '../src/errors.js';
import { tryParsePrefix } from '../src/core/cidr.js';
import { isEtcdClientError } from '../src/etcd/client.js';
import type { Ipam } from '../src/core/ipam.js';
import type { IpamMetrics, IpamUsage } from './ipam-metrics.js';
import {
  type AllocateResponse,
  type AllocationList,
  type GcResponse,
  type ReleaseResponse,
  type Status,
  AllocateRequestSchema,
  AllocateResponseSchema,
  type AllocationEntry,
  AllocationEntrySchema,
  AllocationListSchema,
  ApiErrorSchema,
  GcRequestSchema,
  GcResponseSchema,
  ReleaseRequestSchema,
  ReleaseResponseSchema,
  StatusSchema,
} from '../src/gen/trellis/v1/ipam_api_pb.js';

export interface IpamHost {
  /** The allocator, once the node is registered. */
  readonly ipam: Ipam | undefined;
  readonly nodeName: string;
  readonly subnetId: string | undefined;
  readonly routeProtocol: number;
  readonly routeTable: number;
  notReadyReason(): string | undefined;
  /** Why etcd cannot be counted on now (lease unconfirmed or lost), or undefined. */
  etcdTrouble(): string | undefined;
  /** Longest a call waits for etcd (ms). */
  readonly etcdTimeoutMs: number;
  /** Resolves once `block` is in this node's published advertisement. */
  ensureAdvertised(block: string): Promise<void>;
}

const HTTP_STATUS: Partial<Record<string, number>> = {
  [ErrorCode.Config]: 400,
  [ErrorCode.InvalidCidr]: 400,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.Exhausted]: 507,
  [ErrorCode.Unavailable]: 503,
};

/** Every field of a generated message type, required: what an answer is built from. */
type Fields<T> = Omit<T, '$typeName' | '$unknown'>;

function reply<D extends DescMessage>(res: ServerResponse, status: number, schema: D, message: MessageShape<D>): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(toJsonString(schema, message, { alwaysEmitImplicit: true }));
}

/** Addresses in a block (every address of a block is usable: src/core/ipam-address.ts). */
function blockSize(block: string): number {
  const p = tryParsePrefix(block);
  return typeof p === 'string' ? 0 : 2 ** ((p.family === 4 ? 32 : 128) - p.len);
}

/** A failure of the etcd client library (unreachable, deadline, circuit open) as E_UNAVAILABLE; others unchanged. */
function asApiError(err: unknown): unknown {
  if (!isEtcdClientError(err)) return err;
  return new TrellisError(ErrorCode.Unavailable, `etcd is unreachable: ${(err as Error).message.replace(/\s*\n\s*/g, ' ')}`, { cause: err });
}

function fail(res: ServerResponse, err: unknown): void {
  const code = err instanceof TrellisError ? err.code : ErrorCode.Internal;
  const message = err instanceof Error ? err.message : String(err);
  reply(res, HTTP_STATUS[code] ?? 500, ApiErrorSchema, create(ApiErrorSchema, { code, message }));
}

async function body<D extends DescMessage>(req: IncomingMessage, schema: D): Promise<MessageShape<D>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  try {
    return fromJsonString(schema, Buffer.concat(chunks).toString('utf8') || '{}');
  } catch (err) {
    throw new TrellisError(ErrorCode.Config, `bad ${schema.name}: ${(err as Error).message}`);
  }
}

function required(what: string, value: string): string {
  if (value === '') throw new TrellisError(ErrorCode.Config, `${what} is required`);
  return value;
}

export class IpamService {
  private server: Server | undefined;
  private usageTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: IpamHost,
    private readonly log: Logger,
    private readonly metrics?: IpamMetrics,
  ) {}

  private allocator(): Ipam {
    const reason = this.host.notReadyReason();
    const ipam = this.host.ipam;
    if (ipam === undefined || reason !== undefined) throw new TrellisError(ErrorCode.Unavailable, `trellisd is not ready: ${reason ?? 'starting'}`);
    const trouble = this.host.etcdTrouble();
    if (trouble !== undefined) throw new TrellisError(ErrorCode.Unavailable, `${trouble}: try again later`);
    return ipam;
  }

  /**
   * `work`'s result, or E_UNAVAILABLE once etcdTimeoutMs passed while etcd is
   * in trouble (lease unconfirmed or lost), or once 4 × etcdTimeoutMs passed
   * in any case. While etcd still confirms the lease it is busy, not gone:
   * the call waits on. The work goes on in the background after the answer.
   */
  private async bounded<T>(what: string, work: () => Promise<T>): Promise<T> {
    const ms = this.host.etcdTimeoutMs;
    const started = Date.now();
    const running = work();
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      const check = (): void => {
        const waited = Date.now() - started;
        const trouble = this.host.etcdTrouble();
        if (trouble !== undefined || waited >= 4 * ms) {
          timedOut = true;
          const why = trouble ?? 'etcd is slow';
          reject(new TrellisError(ErrorCode.Unavailable, `etcd did not answer ${what} within ${waited} ms (${why}): try again later`));
          return;
        }
        timer = setTimeout(check, 100);
      };
      timer = setTimeout(check, ms);
    });
    running.catch((err: unknown) => {
      if (timedOut) this.log.warn({ err: (err as Error).message, call: what }, 'IPAM call failed after its answer was sent');
    });
    try {
      return await Promise.race([running, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    switch (route) {
      case 'POST /v1/allocate': {
        const r = await body(req, AllocateRequestSchema);
        const end = this.metrics?.allocationDuration.startTimer();
        let result = 'error';
        try {
          const ipam = this.allocator();
          const request = {
            containerId: required('containerId', r.containerId),
            ifName: required('ifName', r.ifName),
            ...(r.netns !== '' ? { netns: r.netns } : {}),
            ...(r.podNamespace !== '' ? { podNamespace: r.podNamespace } : {}),
            ...(r.podName !== '' ? { podName: r.podName } : {}),
            ...(r.network !== '' ? { network: r.network } : {}),
          };
          const got = await this.bounded('an allocation', async () => {
            const a = await ipam.allocate(request);
            await this.host.ensureAdvertised(a.block);
            return a;
          });
          result = 'ok';
          this.log.info({ containerId: r.containerId, ifName: r.ifName, address: got.address, pod: r.podName || undefined }, 'allocated');
          const answer: Fields<AllocateResponse> = {
            address: got.address,
            prefixLength: got.prefixLength,
            block: got.block,
            routeProtocol: this.host.routeProtocol,
            routeTable: this.host.routeTable,
          };
          reply(res, 200, AllocateResponseSchema, create(AllocateResponseSchema, answer));
        } catch (err) {
          if (err instanceof TrellisError && err.code === ErrorCode.Exhausted) this.metrics?.exhausted.inc();
          throw err;
        } finally {
          end?.({ result });
          this.metrics?.allocations.inc({ result });
        }
        return;
      }
      case 'POST /v1/release': {
        const r = await body(req, ReleaseRequestSchema);
        let address: string | undefined;
        try {
          const ipam = this.allocator();
          const [containerId, ifName] = [required('containerId', r.containerId), required('ifName', r.ifName)];
          address = await this.bounded('a release', () => ipam.release(containerId, ifName));
        } catch (err) {
          this.metrics?.releases.inc({ result: 'error' });
          throw err;
        }
        this.metrics?.releases.inc({ result: address === undefined ? 'none' : 'released' });
        if (address !== undefined) this.log.info({ containerId: r.containerId, ifName: r.ifName, address }, 'released');
        const answer: Fields<ReleaseResponse> = { address: address ?? '' };
        reply(res, 200, ReleaseResponseSchema, create(ReleaseResponseSchema, answer));
        return;
      }
      case 'POST /v1/gc': {
        const r = await body(req, GcRequestSchema);
        const ipam = this.allocator();
        const valid = new Set(r.validAttachments.map((a) => `${a.containerId}\u0000${a.ifName}`));
        const released: string[] = [];
        await this.bounded('a garbage collection', async () => {
          for (const e of await ipam.listAllocations()) {
            const a = e.allocation;
            if ((a.network ?? '') !== r.network || valid.has(`${a.containerId}\u0000${a.ifName}`)) continue;
            const gone = await ipam.release(a.containerId, a.ifName);
            if (gone !== undefined) released.push(gone);
          }
        });
        if (released.length > 0) this.log.info({ network: r.network, released }, 'garbage-collected allocations');
        this.metrics?.gcReleased.inc(released.length);
        const answer: Fields<GcResponse> = { released };
        reply(res, 200, GcResponseSchema, create(GcResponseSchema, answer));
        return;
      }
      case 'GET /v1/allocations': {
        const ipam = this.allocator();
        const list = await this.bounded('a listing', () => ipam.listAllocations());
        const answer: Fields<AllocationList> = {
          node: this.host.nodeName,
          allocations: list.map((e) =>
            create(AllocationEntrySchema, {
              address: e.address,
              block: e.block,
              containerId: e.allocation.containerId,
              ifName: e.allocation.ifName,
              netns: e.allocation.netns ?? '',
              podNamespace: e.allocation.podNamespace ?? '',
              podName: e.allocation.podName ?? '',
              network: e.allocation.network ?? '',
              allocatedAt: new Date(e.allocation.allocatedAt).toISOString(),
            } satisfies Fields<AllocationEntry>),
          ),
        };
        reply(res, 200, AllocationListSchema, create(AllocationListSchema, answer));
        return;
      }
      case 'GET /v1/status': {
        const reason = this.host.notReadyReason();
        const ipam = this.host.ipam;
        const blocks = reason === undefined && ipam !== undefined ? await this.bounded('a block listing', () => ipam.listBlocks()) : [];
        const answer: Fields<Status> = {
          ready: reason === undefined,
          reason: reason ?? '',
          node: this.host.nodeName,
          subnet: this.host.subnetId ?? '',
          blocks,
          routeProtocol: this.host.routeProtocol,
          routeTable: this.host.routeTable,
        };
        reply(res, 200, StatusSchema, create(StatusSchema, answer));
        return;
      }
      default:
        throw new TrellisError(ErrorCode.NotFound, `no such call: ${route}`);
    }
  }

  async listen(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    await removeStaleSocket(path);
    const server = createServer((req, res) => {
      this.handle(req, res).catch((thrown: unknown) => {
        const err = asApiError(thrown);
        if (!(err instanceof TrellisError) || err.code === ErrorCode.Internal) this.log.error({ err: (err as Error).message }, 'IPAM call failed');
        fail(res, err);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path, readableAll: false, writableAll: false }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    this.server = server;
    this.log.info({ socket: path }, 'IPAM API listening');
  }

  /**
   * Reads this node's allocations and blocks once and sets the usage gauges;
   * resolves with the usage, or undefined while the allocator is not ready.
   */
  async refreshUsage(): Promise<IpamUsage | undefined> {
    const ipam = this.host.ipam;
    if (ipam === undefined || this.host.notReadyReason() !== undefined) return undefined;
    const [allocations, blocks] = await Promise.all([ipam.listAllocations(), ipam.listBlocks()]);
    const mine = new Set(blocks);
    const inMine = allocations.filter((a) => mine.has(a.block)).length;
    const usage: IpamUsage = {
      allocated: allocations.length,
      free: Math.max(0, blocks.reduce((n, b) => n + blockSize(b), 0) - inMine),
      blocks: blocks.length,
    };
    this.metrics?.setUsage(usage);
    return usage;
  }

  /** Refreshes the usage gauges now and then every `intervalMs` (errors are logged, the timer goes on). */
  startUsageRefresh(intervalMs: number): void {
    const refresh = (): void => {
      this.refreshUsage().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'IPAM usage refresh failed'));
    };
    refresh();
    this.usageTimer = setInterval(refresh, intervalMs);
    this.usageTimer.unref();
  }

  close(): void {
    clearInterval(this.usageTimer);
    this.server?.close();
  }
}

/** Remove a socket file that nobody listens on any more; refuse to steal a live one. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    if (!statSync(path).isSocket()) throw new TrellisError(ErrorCode.Config, `${path} exists and is not a socket`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new TrellisError(ErrorCode.Config, `another process is serving ${path} (is trellisd already running?)`);
  rmSync(path, { force: true });
}
