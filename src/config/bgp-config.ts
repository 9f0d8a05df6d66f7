// The bgp.* settings: their typed form and the checks that need no network.
//
// A peer is written as one string, "ADDRESS asn=N [maxPrefixes=N]
// [holdTime=9s] [multihop=TTL] [password=SECRET] [multipath=N]", so that it
// fits a YAML list, a comma-separated flag and an environment variable alike.
// Invariants: a parsed peer has a valid IPv4/IPv6 address, an ASN in
// 1..4294967295, maxPrefixes ≥ 1, a hold time of 3..65535 whole seconds and a
// multihop TTL of 0 (directly connected) to 255; addresses are unique.

import { parseAddress } from '../core/cidr.js';

export type BgpMode = 'exporter' | 'tor';

export interface BgpPeer {
  readonly address: string;
  readonly asn: number;
  /** Most prefixes the whole cluster announces to this peer. */
  readonly maxPrefixes: number;
  /** Seconds. */
  readonly holdTime: number;
  /** eBGP multihop TTL; 0 = directly connected. */
  readonly multihop: number;
  readonly password: string;
  /** Most next hops per prefix (paths the peer takes for one prefix). */
  readonly multipath: number;
}

export interface BgpConfig {
  enabled: boolean;
  mode: string;
  asn: number | undefined;
  /** "" = hostIP. */
  routerId: string | undefined;
  /** Peer specifications as written (see the module comment). */
  peers: string[];
  communities: string[];
  gobgpd: string;
  apiListen: string;
  listenPort: number;
  /** ms */
  restartTime: number;
}

export const DEFAULT_MAX_PREFIXES = 100;
export const DEFAULT_PEER_HOLD_TIME = 9;

/** One peer specification; throws an Error whose message names the problem. */
export function parseBgpPeer(spec: string): BgpPeer {
  const [address, ...options] = spec.trim().split(/\s+/);
  const fail = (why: string): never => {
    throw new Error(`bgp.peers: ${JSON.stringify(spec.replace(/password=\S+/, 'password=********'))}: ${why}`);
  };
  if (address === undefined || address === '') fail('empty peer');
  try {
    parseAddress(address as string);
  } catch {
    fail(`${JSON.stringify(address)} is not an IP address`);
  }
  const values = new Map<string, string>();
  for (const option of options) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(option);
    if (m === null) fail(`expected key=value, got ${JSON.stringify(option.startsWith('password') ? 'password…' : option)}`);
    const [, key, value] = m as RegExpExecArray;
    if (!['asn', 'maxPrefixes', 'holdTime', 'multihop', 'password', 'multipath'].includes(key as string)) {
      fail(`unknown option ${key} (asn, maxPrefixes, holdTime, multihop, password, multipath)`);
    }
    if (values.has(key as string)) fail(`${key} given twice`);
    values.set(key as string, value as string);
  }
  const whole = (key: string, dflt: number | undefined, min: number, max: number): number => {
    const text = values.get(key);
    if (text === undefined) {
      if (dflt === undefined) fail(`${key}= is required`);
      return dflt as number;
    }
    const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) fail(`${key} must be a whole number in ${min}..${max}, got ${JSON.stringify(text)}`);
    return n;
  };
  const hold = values.get('holdTime');
  let holdTime = DEFAULT_PEER_HOLD_TIME;
  if (hold !== undefined) {
    const m = /^([0-9]+)s?$/.exec(hold);
    holdTime = m === null ? NaN : Number(m[1]);
    if (!(holdTime >= 3 && holdTime <= 65535)) fail(`holdTime must be whole seconds in 3..65535 (e.g. 9s), got ${JSON.stringify(hold)}`);
  }
  return {
    address: address as string,
    asn: whole('asn', undefined, 1, 4294967295),
    maxPrefixes: whole('maxPrefixes', DEFAULT_MAX_PREFIXES, 1, 1_000_000),
    holdTime,
    multihop: whole('multihop', 0, 0, 255),
    password: values.get('password') ?? '',
    multipath: whole('multipath', 1, 1, 64),
  };
}

/** Parsed peers; problems are appended (one per bad peer). */
export function parseBgpPeers(specs: readonly string[], problems: string[]): BgpPeer[] {
  const peers: BgpPeer[] = [];
  for (const spec of specs) {
    try {
      const peer = parseBgpPeer(spec);
      if (peers.some((p) => p.address === peer.address)) problems.push(`bgp.peers: ${peer.address} is listed twice`);
      else peers.push(peer);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return peers;
}

/** "65000:100" → [65000, 100]; undefined when malformed. */
export function parseCommunity(text: string): [number, number] | undefined {
  const m = /^([0-9]+):([0-9]+)$/.exec(text.trim());
  if (m === null) return undefined;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a <= 65535 && b <= 65535 ? [a, b] : undefined;
}

/** Problems with the bgp.* settings that can be seen without starting anything. */
export function bgpConfigProblems(bgp: BgpConfig): string[] {
  if (!bgp.enabled) return [];
  const problems: string[] = [];
  if (bgp.mode !== 'exporter' && bgp.mode !== 'tor') problems.push(`bgp.mode must be exporter or tor, got ${JSON.stringify(bgp.mode)}`);
  if (bgp.asn === undefined) problems.push('bgp.asn is required when bgp.enabled is true');
  if (bgp.routerId !== undefined && !/^([0-9]{1,3})(\.[0-9]{1,3}){3}$/.test(bgp.routerId)) {
    problems.push(`bgp.routerId must be an IPv4 address, got ${JSON.stringify(bgp.routerId)}`);
  }
  if (bgp.peers.length === 0) problems.push('bgp.peers must name at least one peer when bgp.enabled is true');
  parseBgpPeers(bgp.peers, problems);
  for (const c of bgp.communities) {
    if (parseCommunity(c) === undefined) problems.push(`bgp.communities: ${JSON.stringify(c)} is not ASN:VALUE with both parts in 0..65535`);
  }
  if (!bgp.gobgpd.startsWith('/')) problems.push(`bgp.gobgpd must be an absolute path, got ${JSON.stringify(bgp.gobgpd)}`);
  if (!/^127\.[0-9.]+:[0-9]+$|^\[::1\]:[0-9]+$|^localhost:[0-9]+$/.test(bgp.apiListen)) {
    problems.push(`bgp.apiListen must be a loopback host:port (e.g. 127.0.0.1:50051), got ${JSON.stringify(bgp.apiListen)}`);
  }
  if (bgp.restartTime % 1000 !== 0) problems.push(`bgp.restartTime must be whole seconds, got ${bgp.restartTime} ms`);
  return problems;
}
