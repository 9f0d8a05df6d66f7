// Client of trellisd's local IPAM API (proto/trellis/v1/ipam_api.proto):
// HTTP/1.1 over the unix socket, JSON bodies, one request per connection
// (`Connection: close`: the response ends where the stream ends).
//
// Invariants:
//  * Every call ends within the configured timeout, answered or not.
//  * Every failure becomes a CniError: no answer → 100, a transient refusal
//    (E_CONFLICT, E_UNAVAILABLE: busy, starting, etcd unreachable) → 11,
//    E_EXHAUSTED → 101, anything else trellisd refuses → 106.
//  * Only node:net is loaded (node:http's client costs ~10 ms on its first
//    request in a fresh process); no protobuf runtime: request and response
//    shapes are the generated types, imported for type checking only, and
//    every answer is checked field by field against them (api-wire.ts); a
//    field missing from an answer is a CniError, never a default.

import { connect } from 'node:net';
import type { AllocateResponse, AllocationList, GcResponse, ReleaseResponse, Status as StatusMessage } from '../src/gen/trellis/v1/ipam_api_pb.js';
import {
  ALLOCATE_RESPONSE,
  ALLOCATION_LIST,
  GC_RESPONSE,
  RELEASE_RESPONSE,
  STATUS,
  decode,
  isApiError,
  type AllocateRequestBody,
  type AttachmentBody,
  type GcRequestBody,
  type ReleaseRequestBody,
  type Wire,
} from './api-wire.js';
import { Code, CniError } from './cni.js';

export type Allocation = Wire<AllocateResponse>;
export type AllocationEntry = Wire<AllocationList>['allocations'][number];
export type Status = Wire<StatusMessage>;

/** No answer from trellisd; `mayHaveActed` when the request may have reached it (timeout, reset). */
export class Unreachable extends CniError {
  constructor(
    message: string,
    readonly mayHaveActed: boolean,
  ) {
    super(Code.TrellisdUnreachable, message);
  }
}

/** What trellisd answered when the request reached it but was refused. */
export class ApiRefusal extends CniError {
  constructor(
    code: number,
    message: string,
    readonly apiCode: string,
  ) {
    super(code, message);
  }
}

const API_TO_CNI: Readonly<Record<string, number>> = {
  E_CONFLICT: Code.TryAgainLater,
  E_UNAVAILABLE: Code.TryAgainLater,
  E_EXHAUSTED: Code.Exhausted,
};

export class TrellisdClient {
  constructor(
    readonly socket: string,
    readonly timeoutMs: number,
  ) {}

  /**
   * Sends one request (`Connection: close`) and resolves with the parsed 2xx
   * body. `onSent` runs once the request has been handed to the kernel.
   */
  call(method: 'GET' | 'POST', path: string, body?: AllocateRequestBody | ReleaseRequestBody | GcRequestBody, onSent?: () => void): Promise<unknown> {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const head =
      `${method} ${path} HTTP/1.1\r\nHost: trellisd\r\nConnection: close\r\n` +
      (body === undefined ? '' : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n`) +
      '\r\n';
    return new Promise((resolve, reject) => {
      let settled = false;
      let sent = false;
      const chunks: Buffer[] = [];
      const finish = (err: Error | undefined, value?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        if (err !== undefined) reject(err);
        else resolve(value);
      };
      const sock = connect(this.socket);
      const timer = setTimeout(() => {
        finish(new Unreachable(`trellisd did not answer ${method} ${path} within ${this.timeoutMs} ms (socket ${this.socket})`, sent));
      }, this.timeoutMs);
      sock.on('error', (err) => finish(this.unreachable(err, sent)));
      sock.on('data', (c: Buffer) => chunks.push(c));
      sock.on('end', () => {
        if (chunks.length === 0) {
          finish(new Unreachable(`trellisd closed the connection without answering ${method} ${path} (stopping?)`, sent));
          return;
        }
        try {
          finish(undefined, answer(method, path, parseResponse(Buffer.concat(chunks))));
        } catch (err) {
          finish(err as Error);
        }
      });
      sock.write(head + payload, () => {
        sent = true;
        onSent?.();
      });
    });
  }

  private unreachable(err: Error, sent: boolean): Unreachable {
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    const why: Record<string, string> = {
      ENOENT: 'no socket there (is trellisd running? is "socket" right?)',
      ECONNREFUSED: 'nobody listens on the socket (is trellisd running?)',
      EACCES: 'permission denied on the socket (the plugin runs as root)',
      ECONNRESET: 'connection reset (trellisd stopped while answering)',
      EPIPE: 'trellisd closed the connection (stopping?)',
    };
    return new Unreachable(`trellisd is not reachable at ${this.socket}: ${why[code] ?? code}`, sent);
  }

  async allocate(req: AllocateRequestBody, onSent?: () => void): Promise<Allocation> {
    const r = decode(await this.call('POST', '/v1/allocate', req, onSent), ALLOCATE_RESPONSE, 'POST /v1/allocate');
    if (r.address === '') throw new CniError(Code.TrellisdRefused, 'trellisd answered POST /v1/allocate without an address');
    return r;
  }

  /** Releases the pair's address; resolves with it, or '' when the pair held none. */
  async release(containerId: string, ifName: string): Promise<string> {
    const req: ReleaseRequestBody = { containerId, ifName };
    return decode<ReleaseResponse>(await this.call('POST', '/v1/release', req), RELEASE_RESPONSE, 'POST /v1/release').address;
  }

  async gc(network: string, valid: ReadonlyArray<AttachmentBody>): Promise<readonly string[]> {
    const req: GcRequestBody = { network, validAttachments: valid.map((a) => ({ containerId: a.containerId, ifName: a.ifName })) };
    return decode<GcResponse>(await this.call('POST', '/v1/gc', req), GC_RESPONSE, 'POST /v1/gc').released;
  }

  async allocations(): Promise<readonly AllocationEntry[]> {
    return decode(await this.call('GET', '/v1/allocations'), ALLOCATION_LIST, 'GET /v1/allocations').allocations;
  }

  async status(): Promise<Status> {
    return decode(await this.call('GET', '/v1/status'), STATUS, 'GET /v1/status');
  }
}

/** Status and body of a complete HTTP/1.1 response (Content-Length, chunked, or up to the end). */
export function parseResponse(raw: Buffer): { status: number; body: string } {
  const split = raw.indexOf('\r\n\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw.subarray(0, Math.min(raw.length, 32)).toString('latin1'));
  if (split < 0 || m === null) throw new CniError(Code.TrellisdRefused, 'trellisd sent an incomplete or malformed HTTP response');
  const headers = raw.subarray(0, split).toString('latin1').toLowerCase();
  let rest = raw.subarray(split + 4);
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(headers)) {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = rest.indexOf('\r\n');
      const size = eol < 0 ? NaN : parseInt(rest.subarray(0, eol).toString('latin1'), 16);
      if (!Number.isInteger(size) || rest.length < eol + 2 + size) throw new CniError(Code.TrellisdRefused, 'trellisd sent a truncated chunked response');
      if (size === 0) break;
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      rest = rest.subarray(eol + 4 + size);
    }
    rest = Buffer.concat(parts);
  } else {
    const len = /\r\ncontent-length:\s*(\d+)/.exec(headers);
    if (len !== null) {
      if (rest.length < Number(len[1])) throw new CniError(Code.TrellisdRefused, 'trellisd sent a truncated response');
      rest = rest.subarray(0, Number(len[1]));
    }
  }
  return { status: Number(m[1]), body: rest.toString('utf8') };
}

/** The parsed 2xx body, or the CniError for what trellisd answered. */
function answer(method: string, path: string, res: { status: number; body: string }): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body);
  } catch {
    throw new CniError(Code.TrellisdRefused, `trellisd answered ${method} ${path} with something that is not JSON (HTTP ${res.status})`);
  }
  if (res.status >= 200 && res.status < 300) return parsed;
  if (!isApiError(parsed)) {
    throw new ApiRefusal(Code.TrellisdRefused, `trellisd refused ${method} ${path} with HTTP ${res.status} and a body that is not an ApiError: ${res.body.slice(0, 200)}`, `HTTP ${res.status}`);
  }
  throw new ApiRefusal(API_TO_CNI[parsed.code] ?? Code.TrellisdRefused, `trellisd: ${parsed.message} (${parsed.code})`, parsed.code);
}
