// Client of GoBGP's gRPC API (gobgpd --api-hosts): start the BGP instance,
// add and remove peers, add and withdraw our paths, read sessions and what
// we announce. The API schema is GoBGP's own .proto files, loaded at run time
// from the Debian package golang-github-osrg-gobgp-dev (never copied here).
// Path attributes travel as google.protobuf.Any; the four we use (origin,
// next hop, communities, IPv4/IPv6 prefix) are encoded with the protobuf wire
// format directly.
// Invariants: only locally originated paths (GoBGP shows their neighbor as
// "<nil>"; routes from peers are rejected on import anyway) are listed as
// ours or deleted; every call has a deadline.

import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { formatPrefix, parsePrefix, type Prefix } from '../core/cidr.js';
import { ErrorCode, TrellisError } from '../errors.js';

export const GOBGP_PROTO_DIR = '/usr/share/gocode/src/github.com/osrg/gobgp/api';
const TYPE = 'type.googleapis.com/apipb.';

export type SessionState = 'unknown' | 'idle' | 'connect' | 'active' | 'opensent' | 'openconfirm' | 'established';

export interface PeerSpec {
  readonly address: string;
  readonly asn: number;
  readonly password: string;
  /** Seconds. */
  readonly holdTime: number;
  readonly multihop: number;
  /** Seconds; 0 = graceful restart off. */
  readonly restartTime: number;
}

export interface PeerStatus {
  readonly address: string;
  readonly asn: number;
  readonly state: SessionState;
  /** "up", "down" or "pfx_ct" (the peer's prefix limit tripped). */
  readonly adminState: string;
  readonly advertised: number;
  readonly received: number;
  /** Session flaps seen by the speaker. */
  readonly flops: number;
  /** Seconds since the epoch the session last came up (0 = never). */
  readonly uptime: number;
  readonly routerId: string;
}

export interface GlobalSpec {
  readonly asn: number;
  readonly routerId: string;
  readonly listenPort: number;
  /** Seconds; 0 = graceful restart off. */
  readonly restartTime: number;
}

export interface AnnouncedPath {
  readonly prefix: Prefix;
  readonly nextHop: string;
}

type Any = { type_url: string; value: Buffer };
type Callback<T> = (err: grpc.ServiceError | null, value: T) => void;
type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: Callback<unknown>) => void;
type Stream = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

function any(type: string, w: BinaryWriter): Any {
  return { type_url: TYPE + type, value: Buffer.from(w.finish()) };
}

function prefixNlri(p: Prefix): Any {
  const [addr] = formatPrefix(p).split('/');
  return any('IPAddressPrefix', new BinaryWriter().tag(1, WireType.Varint).uint32(p.len).tag(2, WireType.LengthDelimited).string(addr as string));
}

function decodeFields(value: Uint8Array): Map<number, Array<number | string>> {
  const out = new Map<number, Array<number | string>>();
  const r = new BinaryReader(value);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    const list = out.get(no) ?? [];
    if (wt === WireType.Varint) list.push(r.uint32());
    else if (wt === WireType.LengthDelimited) list.push(r.string());
    else r.skip(wt);
    out.set(no, list);
  }
  return out;
}

function family(prefix: Prefix): { afi: string; safi: string } {
  return { afi: prefix.family === 4 ? 'AFI_IP' : 'AFI_IP6', safi: 'SAFI_UNICAST' };
}

export class GobgpClient {
  private readonly api: grpc.Client & Record<string, Unary & Stream>;

  constructor(
    readonly target: string,
    private readonly deadlineMs = 5000,
    protoDir = GOBGP_PROTO_DIR,
  ) {
    const file = `${protoDir}/gobgp.proto`;
    if (!existsSync(file)) {
      throw new TrellisError(ErrorCode.Config, `GoBGP's API definition ${file} is missing (install golang-github-osrg-gobgp-dev)`);
    }
    const def = protoLoader.loadSync(file, { includeDirs: [protoDir], keepCase: false, longs: Number, enums: String, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { apipb: { GobgpApi: grpc.ServiceClientConstructor } };
    this.api = new pkg.apipb.GobgpApi(target, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Unary & Stream>;
  }

  private call<T>(method: string, req: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const fn = this.api[method] as Unary;
      fn.call(this.api, req, new grpc.Metadata(), { deadline: Date.now() + this.deadlineMs }, (err, value) => {
        if (err === null) resolve(value as T);
        else reject(new TrellisError(ErrorCode.Unavailable, `gobgpd ${method}: ${err.details || err.message}`, { cause: err, details: { code: err.code } }));
      });
    });
  }

  private stream<T>(method: string, req: unknown): Promise<T[]> {
    return new Promise((resolve, reject) => {
      const out: T[] = [];
      const s = (this.api[method] as Stream).call(this.api, req, new grpc.Metadata(), { deadline: Date.now() + this.deadlineMs });
      s.on('data', (d: unknown) => out.push(d as T));
      s.on('error', (err: grpc.ServiceError) => reject(new TrellisError(ErrorCode.Unavailable, `gobgpd ${method}: ${err.details || err.message}`, { cause: err })));
      s.on('end', () => resolve(out));
    });
  }

  /** The running instance's AS and router id; asn 0 when BGP is not started. */
  async getGlobal(): Promise<{ asn: number; routerId: string }> {
    const r = await this.call<{ global?: { asn: number; routerId: string } }>('getBgp', {});
    return { asn: r.global?.asn ?? 0, routerId: r.global?.routerId ?? '' };
  }

  async startBgp(g: GlobalSpec): Promise<void> {
    const gr = g.restartTime > 0 ? { enabled: true, restartTime: g.restartTime, notificationEnabled: false } : undefined;
    await this.call('startBgp', {
      global: {
        asn: g.asn,
        routerId: g.routerId,
        listenPort: g.listenPort,
        gracefulRestart: gr,
        // Routes the peers send us are not used: reject them on import.
        applyPolicy: { importPolicy: { name: 'global', direction: 'IMPORT', defaultAction: 'REJECT' } },
      },
    });
  }

  async stopBgp(): Promise<void> {
    await this.call('stopBgp', {});
  }

  async addPeer(p: PeerSpec): Promise<void> {
    const fam = { afi: p.address.includes(':') ? 'AFI_IP6' : 'AFI_IP', safi: 'SAFI_UNICAST' };
    await this.call('addPeer', {
      peer: {
        conf: { neighborAddress: p.address, peerAsn: p.asn, authPassword: p.password },
        timers: { config: { holdTime: p.holdTime, keepaliveInterval: Math.max(1, Math.floor(p.holdTime / 3)), connectRetry: 2 } },
        ebgpMultihop: p.multihop > 0 ? { enabled: true, multihopTtl: p.multihop } : undefined,
        gracefulRestart: p.restartTime > 0 ? { enabled: true, restartTime: p.restartTime } : undefined,
        afiSafis: [{ config: { family: fam, enabled: true }, mpGracefulRestart: { config: { enabled: p.restartTime > 0 } } }],
      },
    });
  }

  async deletePeer(address: string): Promise<void> {
    await this.call('deletePeer', { address });
  }

  async listPeers(): Promise<PeerStatus[]> {
    type Raw = {
      peer?: {
        conf?: { neighborAddress: string; peerAsn: number };
        state?: { sessionState: string; adminState: string; flops: number; routerId: string; peerAsn: number };
        timers?: { state?: { uptime?: { seconds: number } } };
        afiSafis?: Array<{ state?: { advertised: number; received: number } }>;
      };
    };
    const raw = await this.stream<Raw>('listPeer', { enableAdvertised: true });
    return raw.map(({ peer }) => ({
      address: peer?.conf?.neighborAddress ?? '',
      asn: peer?.conf?.peerAsn ?? 0,
      state: (peer?.state?.sessionState ?? 'UNKNOWN').toLowerCase() as SessionState,
      adminState: (peer?.state?.adminState ?? 'UP').toLowerCase(),
      advertised: (peer?.afiSafis ?? []).reduce((s, a) => s + Number(a.state?.advertised ?? 0), 0),
      received: (peer?.afiSafis ?? []).reduce((s, a) => s + Number(a.state?.received ?? 0), 0),
      flops: peer?.state?.flops ?? 0,
      uptime: Number(peer?.timers?.state?.uptime?.seconds ?? 0),
      routerId: peer?.state?.routerId ?? '',
    }));
  }

  /** Announces `prefix` via `nextHop` with `communities` (each ASN << 16 | VALUE). */
  async addPath(prefix: Prefix, nextHop: string, communities: readonly number[] = []): Promise<void> {
    await this.call('addPath', { tableType: 'GLOBAL', path: this.path(prefix, nextHop, communities) });
  }

  async deletePath(path: AnnouncedPath): Promise<void> {
    await this.call('deletePath', { tableType: 'GLOBAL', family: family(path.prefix), path: this.path(path.prefix, path.nextHop, []) });
  }

  /** The locally originated paths (ours), whichever trellisd added them. */
  async listOwnPaths(familyOf: 4 | 6 = 4): Promise<AnnouncedPath[]> {
    type Raw = { destination?: { prefix: string; paths: Array<{ pattrs: Any[]; neighborIp: string }> } };
    const fam = { afi: familyOf === 4 ? 'AFI_IP' : 'AFI_IP6', safi: 'SAFI_UNICAST' };
    const raw = await this.stream<Raw>('listPath', { tableType: 'GLOBAL', family: fam });
    const out: AnnouncedPath[] = [];
    for (const { destination } of raw) {
      for (const path of destination?.paths ?? []) {
        if (path.neighborIp !== '<nil>' && path.neighborIp !== '') continue;
        const hop = path.pattrs.find((a) => a.type_url === `${TYPE}NextHopAttribute`);
        const nextHop = hop === undefined ? '' : String(decodeFields(hop.value).get(1)?.[0] ?? '');
        out.push({ prefix: parsePrefix(destination?.prefix ?? ''), nextHop });
      }
    }
    return out;
  }

  private path(prefix: Prefix, nextHop: string, communities: readonly number[]): unknown {
    const pattrs: Any[] = [
      any('OriginAttribute', new BinaryWriter().tag(1, WireType.Varint).uint32(0)),
      any('NextHopAttribute', new BinaryWriter().tag(1, WireType.LengthDelimited).string(nextHop)),
    ];
    if (communities.length > 0) {
      const w = new BinaryWriter().tag(1, WireType.LengthDelimited).fork();
      for (const c of communities) w.uint32(c);
      pattrs.push(any('CommunitiesAttribute', w.join()));
    }
    return { nlri: prefixNlri(prefix), pattrs, family: family(prefix) };
  }

  close(): void {
    this.api.close();
  }
}
