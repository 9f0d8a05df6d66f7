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
//    request in a fresh process); no protobuf runtime (the JSON is read by hand).

import { connect } from 'node:net';
import { Code, CniError } from './cni.js';

export interface Allocation {
  readonly address: string;
  readonly prefixLength: number;
  readonly block: string;
  readonly routeProtocol: number;
  readonly routeTable: number;
}

export interface AllocationEntry {
  readonly address: string;
  readonly containerId: string;
  readonly ifName: string;
  readonly network: string;
}

export interface Status {
  readonly ready: boolean;
  readonly reason: string;
  readonly routeProtocol: number;
  readonly routeTable: number;
}

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
  call(method: 'GET' | 'POST', path: string, body?: unknown, onSent?: () => void): Promise<Record<string, unknown>> {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const head =
      `${method} ${path} HTTP/1.1\r\nHost: trellisd\r\nConnection: close\r\n` +
      (body === undefined ? '' : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n`) +
      '\r\n';
    return new Promise((resolve, reject) => {
      let settled = false;
      let sent = false;
      const chunks: Buffer[] = [];
      const finish = (err: Error | undefined, value?: Record<string, unknown>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        if (err !== undefined) reject(err);
        else resolve(value ?? {});
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

  async allocate(
    req: { containerId: string; ifName: string; netns: string; podNamespace: string; podName: string; network: string },
    onSent?: () => void,
  ): Promise<Allocation> {
    const r = await this.call('POST', '/v1/allocate', req, onSent);
    const address = str(r.address);
    if (address === '') throw new CniError(Code.TrellisdRefused, 'trellisd answered /v1/allocate without an address');
    return {
      address,
      prefixLength: num(r.prefixLength, address.includes(':') ? 128 : 32),
      block: str(r.block),
      routeProtocol: num(r.routeProtocol, 0),
      routeTable: num(r.routeTable, 254),
    };
  }

  /** Releases the pair's address; resolves with it, or '' when the pair held none. */
  async release(containerId: string, ifName: string): Promise<string> {
    return str((await this.call('POST', '/v1/release', { containerId, ifName })).address);
  }

  async gc(network: string, valid: ReadonlyArray<{ containerId: string; ifName: string }>): Promise<string[]> {
    const r = await this.call('POST', '/v1/gc', { network, validAttachments: valid });
    return Array.isArray(r.released) ? r.released.map(str) : [];
  }

  async allocations(): Promise<AllocationEntry[]> {
    const r = await this.call('GET', '/v1/allocations');
    const list = Array.isArray(r.allocations) ? (r.allocations as Array<Record<string, unknown>>) : [];
    return list.map((e) => ({ address: str(e.address), containerId: str(e.containerId), ifName: str(e.ifName), network: str(e.network) }));
  }

  async status(): Promise<Status> {
    const r = await this.call('GET', '/v1/status');
    return { ready: r.ready === true, reason: str(r.reason), routeProtocol: num(r.routeProtocol, 0), routeTable: num(r.routeTable, 254) };
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function num(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isInteger(v) ? v : fallback;
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

/** The 2xx body as an object, or the CniError for what trellisd answered. */
function answer(method: string, path: string, res: { status: number; body: string }): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body === '' ? '{}' : res.body);
  } catch {
    throw new CniError(Code.TrellisdRefused, `trellisd answered ${method} ${path} with something that is not JSON (HTTP ${res.status})`);
  }
  const obj = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  if (res.status >= 200 && res.status < 300) return obj;
  const apiCode = typeof obj.code === 'string' ? obj.code : `HTTP ${res.status}`;
  const message = typeof obj.message === 'string' ? obj.message : `HTTP ${res.status}`;
  throw new ApiRefusal(API_TO_CNI[apiCode] ?? Code.TrellisdRefused, `trellisd: ${message} (${apiCode})`, apiCode);
}
