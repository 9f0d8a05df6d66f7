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

import { chmodSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { fromJsonString, toJsonString, create, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import { ErrorCode, TrellisError } from '../src/errors.js';
import type { Ipam } from '../src/core/ipam.js';
import {
  AllocateRequestSchema,
  AllocateResponseSchema,
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

function reply<D extends DescMessage>(res: ServerResponse, status: number, schema: D, message: MessageShape<D>): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(toJsonString(schema, message));
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

  constructor(
    private readonly host: IpamHost,
    private readonly log: Logger,
  ) {}

  private allocator(): Ipam {
    const reason = this.host.notReadyReason();
    const ipam = this.host.ipam;
    if (ipam === undefined || reason !== undefined) throw new TrellisError(ErrorCode.Unavailable, `trellisd is not ready: ${reason ?? 'starting'}`);
    return ipam;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    switch (route) {
      case 'POST /v1/allocate': {
        const r = await body(req, AllocateRequestSchema);
        const ipam = this.allocator();
        const got = await ipam.allocate({
          containerId: required('containerId', r.containerId),
          ifName: required('ifName', r.ifName),
          ...(r.netns !== '' ? { netns: r.netns } : {}),
          ...(r.podNamespace !== '' ? { podNamespace: r.podNamespace } : {}),
          ...(r.podName !== '' ? { podName: r.podName } : {}),
          ...(r.network !== '' ? { network: r.network } : {}),
        });
        await this.host.ensureAdvertised(got.block);
        this.log.info({ containerId: r.containerId, ifName: r.ifName, address: got.address, pod: r.podName || undefined }, 'allocated');
        reply(res, 200, AllocateResponseSchema, create(AllocateResponseSchema, { ...got, routeProtocol: this.host.routeProtocol, routeTable: this.host.routeTable }));
        return;
      }
      case 'POST /v1/release': {
        const r = await body(req, ReleaseRequestSchema);
        const address = await this.allocator().release(required('containerId', r.containerId), required('ifName', r.ifName));
        if (address !== undefined) this.log.info({ containerId: r.containerId, ifName: r.ifName, address }, 'released');
        reply(res, 200, ReleaseResponseSchema, create(ReleaseResponseSchema, { address: address ?? '' }));
        return;
      }
      case 'POST /v1/gc': {
        const r = await body(req, GcRequestSchema);
        const ipam = this.allocator();
        const valid = new Set(r.validAttachments.map((a) => `${a.containerId}\u0000${a.ifName}`));
        const released: string[] = [];
        for (const e of await ipam.listAllocations()) {
          const a = e.allocation;
          if ((a.network ?? '') !== r.network || valid.has(`${a.containerId}\u0000${a.ifName}`)) continue;
          const gone = await ipam.release(a.containerId, a.ifName);
          if (gone !== undefined) released.push(gone);
        }
        if (released.length > 0) this.log.info({ network: r.network, released }, 'garbage-collected allocations');
        reply(res, 200, GcResponseSchema, create(GcResponseSchema, { released }));
        return;
      }
      case 'GET /v1/allocations': {
        const ipam = this.allocator();
        const list = await ipam.listAllocations();
        reply(
          res,
          200,
          AllocationListSchema,
          create(AllocationListSchema, {
            node: this.host.nodeName,
            allocations: list.map((e) => ({
              address: e.address,
              block: e.block,
              containerId: e.allocation.containerId,
              ifName: e.allocation.ifName,
              netns: e.allocation.netns ?? '',
              podNamespace: e.allocation.podNamespace ?? '',
              podName: e.allocation.podName ?? '',
              network: e.allocation.network ?? '',
              allocatedAt: new Date(e.allocation.allocatedAt).toISOString(),
            })),
          }),
        );
        return;
      }
      case 'GET /v1/status': {
        const reason = this.host.notReadyReason();
        const blocks = reason === undefined && this.host.ipam !== undefined ? await this.host.ipam.listBlocks() : [];
        reply(
          res,
          200,
          StatusSchema,
          create(StatusSchema, {
            ready: reason === undefined,
            reason: reason ?? '',
            node: this.host.nodeName,
            subnet: this.host.subnetId ?? '',
            blocks,
            routeProtocol: this.host.routeProtocol,
            routeTable: this.host.routeTable,
          }),
        );
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
      this.handle(req, res).catch((err: unknown) => {
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

  close(): void {
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
