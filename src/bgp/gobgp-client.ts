// Client of GoBGP's gRPC API (gobgpd --api-hosts): start the BGP instance,
// add and remove peers, add and withdraw our paths, read sessions and what
// we announce. The API schema is GoBGP's own .proto files, loaded at run time
// from the Debian package golang-github-osrg-gobgp-dev (never copied here).
// Path attributes travel as google.protobuf.Any; the ones we use (origin,
// next hop, local preference, communities, large communities, IPv4/IPv6
// prefix) are encoded with the protobuf wire format directly.
// Several paths of one prefix are told apart by their path identifier (sent
// to ADD-PATH peers); which peer takes which path is decided by the global
// export policy installPeerFilter sets up (docs/bgp.md, "Per-peer plans").
// Invariants: only locally originated paths (GoBGP shows their neighbor as
// "<nil>"; routes from peers are rejected on import anyway) are listed as
// ours or deleted; every call has a deadline; a password is sent to gobgpd
// and never put in an error message.

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
  /** ADD-PATH: most paths per prefix sent to the peer; ≤ 1 = ADD-PATH off (best path only). */
  readonly addPathSendMax: number;
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

/** A large community: [global administrator, local data 1, local data 2]. */
export type LargeCommunity = readonly [number, number, number];

export interface AnnouncedPath {
  readonly prefix: Prefix;
  readonly nextHop: string;
  /** Path identifier among our paths of the prefix (0 = the only one). */
  readonly identifier: number;
  /** LOCAL_PREF: picks the best of our paths of a prefix (not sent to eBGP peers). */
  readonly localPref: number;
  readonly largeCommunities: readonly LargeCommunity[];
}

/** One peer of the export filter: it takes only paths tagged with `tag`. */
export interface FilteredPeer {
  readonly address: string;
  readonly tag: LargeCommunity;
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

function largeCommunities(list: readonly LargeCommunity[]): Any {
  const w = new BinaryWriter();
  for (const [g, a, b] of list) w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.Varint).uint32(g).tag(2, WireType.Varint).uint32(a).tag(3, WireType.Varint).uint32(b).join();
  return any('LargeCommunitiesAttribute', w);
}

function decodeLargeCommunities(value: Uint8Array): LargeCommunity[] {
  const out: LargeCommunity[] = [];
  const r = new BinaryReader(value);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no !== 1 || wt !== WireType.LengthDelimited) {
      r.skip(wt);
      continue;
    }
    const f = decodeFields(r.bytes());
    out.push([Number(f.get(1)?.[0] ?? 0), Number(f.get(2)?.[0] ?? 0), Number(f.get(3)?.[0] ?? 0)]);
  }
  return out;
}

export function formatLargeCommunity(c: LargeCommunity): string {
  return c.join(':');
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
        afiSafis: [
          {
            config: { family: fam, enabled: true },
            mpGracefulRestart: { config: { enabled: p.restartTime > 0 } },
            addPaths: p.addPathSendMax > 1 ? { config: { receive: false, sendMax: p.addPathSendMax } } : undefined,
          },
        ],
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

  /**
   * The global export policy: a peer of `peers` takes a path only when the
   * path carries its tag; every large community whose global administrator
   * and first local data are those of the tags is removed before sending.
   * Installed once per peer list (`name` tells them apart); an instance that
   * already has it (a gobgpd kept across a trellisd restart) is left alone.
   */
  async installPeerFilter(name: string, peers: readonly FilteredPeer[], strip: string): Promise<void> {
    const existing = await this.stream<{ assignment?: { policies?: Array<{ name: string }> } }>('listPolicyAssignment', { name: 'global', direction: 'EXPORT' });
    if (existing.some((a) => (a.assignment?.policies ?? []).some((p) => p.name === name))) return;
    const statements: unknown[] = [];
    for (const [i, p] of peers.entries()) {
      const host = p.address.includes(':') ? 128 : 32;
      await this.call('addDefinedSet', { definedSet: { definedType: 'NEIGHBOR', name: `${name}-peer-${i}`, list: [`${p.address}/${host}`] } });
      await this.call('addDefinedSet', { definedSet: { definedType: 'LARGE_COMMUNITY', name: `${name}-tag-${i}`, list: [`^${formatLargeCommunity(p.tag)}$`] } });
      statements.push({
        name: `${name}-only-tagged-${i}`,
        conditions: { neighborSet: { type: 'ANY', name: `${name}-peer-${i}` }, largeCommunitySet: { type: 'INVERT', name: `${name}-tag-${i}` } },
        actions: { routeAction: 'REJECT' },
      });
    }
    statements.push({ name: `${name}-strip-tags`, conditions: {}, actions: { routeAction: 'ACCEPT', largeCommunity: { type: 'REMOVE', communities: [strip] } } });
    await this.call('addPolicy', { policy: { name, statements } });
    await this.call('setPolicyAssignment', { assignment: { name: 'global', direction: 'EXPORT', policies: [{ name }], defaultAction: 'ACCEPT' } });
  }

  /** Announces a path with `communities` (each ASN << 16 | VALUE); replaces ours of the same prefix and identifier. */
  async addPath(path: AnnouncedPath, communities: readonly number[] = []): Promise<void> {
    await this.call('addPath', { tableType: 'GLOBAL', path: this.path(path, communities) });
  }

  async deletePath(path: AnnouncedPath): Promise<void> {
    await this.call('deletePath', { tableType: 'GLOBAL', family: family(path.prefix), path: this.path(path, []) });
  }

  /** The locally originated paths (ours), whichever trellisd added them. */
  async listOwnPaths(familyOf: 4 | 6 = 4): Promise<AnnouncedPath[]> {
    type Raw = { destination?: { prefix: string; paths: Array<{ pattrs: Any[]; neighborIp: string; identifier: number }> } };
    const fam = { afi: familyOf === 4 ? 'AFI_IP' : 'AFI_IP6', safi: 'SAFI_UNICAST' };
    const raw = await this.stream<Raw>('listPath', { tableType: 'GLOBAL', family: fam });
    const out: AnnouncedPath[] = [];
    for (const { destination } of raw) {
      for (const path of destination?.paths ?? []) {
        if (path.neighborIp !== '<nil>' && path.neighborIp !== '') continue;
        const hop = path.pattrs.find((a) => a.type_url === `${TYPE}NextHopAttribute`);
        const nextHop = hop === undefined ? '' : String(decodeFields(hop.value).get(1)?.[0] ?? '');
        const pref = path.pattrs.find((a) => a.type_url === `${TYPE}LocalPrefAttribute`);
        const large = path.pattrs.find((a) => a.type_url === `${TYPE}LargeCommunitiesAttribute`);
        out.push({
          prefix: parsePrefix(destination?.prefix ?? ''),
          nextHop,
          identifier: Number(path.identifier ?? 0),
          localPref: pref === undefined ? 100 : Number(decodeFields(pref.value).get(1)?.[0] ?? 0),
          largeCommunities: large === undefined ? [] : decodeLargeCommunities(large.value),
        });
      }
    }
    return out;
  }

  private path(p: AnnouncedPath, communities: readonly number[]): unknown {
    const { prefix, nextHop } = p;
    const pattrs: Any[] = [
      any('OriginAttribute', new BinaryWriter().tag(1, WireType.Varint).uint32(0)),
      any('NextHopAttribute', new BinaryWriter().tag(1, WireType.LengthDelimited).string(nextHop)),
      any('LocalPrefAttribute', new BinaryWriter().tag(1, WireType.Varint).uint32(p.localPref)),
    ];
    if (p.largeCommunities.length > 0) pattrs.push(largeCommunities(p.largeCommunities));
    if (communities.length > 0) {
      const w = new BinaryWriter().tag(1, WireType.LengthDelimited).fork();
      for (const c of communities) w.uint32(c);
      pattrs.push(any('CommunitiesAttribute', w.join()));
    }
    return { nlri: prefixNlri(prefix), pattrs, family: family(prefix), identifier: p.identifier };
  }

  close(): void {
    this.api.close();
  }
}
