// The EC2 instance metadata service (IMDSv2), for what the configuration
// leaves out: this instance's id, its region, its VPC id, its private IPv4
// address (local-ipv4) and its VPC's IPv4 CIDR blocks.
//
// IMDSv2 only: a session token is fetched with PUT /latest/api/token and sent
// with every GET. The base URL is `vpc.metadataEndpoint`; nothing else is
// ever contacted. Each request has a short deadline, and the whole lookup is
// retried a few times (the service can be slow right after boot).
// Invariant: a value that is configured is never looked up.

import { ErrorCode, TrellisError } from '../errors.js';

export interface MetadataOptions {
  /** Base URL, e.g. http://169.254.169.254 */
  readonly endpoint: string;
  /** Deadline of each request (default 2 s). */
  readonly timeoutMs?: number;
  /** Attempts of the whole lookup (default 3). */
  readonly attempts?: number;
}

export interface InstanceIdentity {
  readonly instanceId: string;
  readonly region: string;
  /** Empty when not asked for. */
  readonly vpcId: string;
}

export interface IdentityWanted {
  /** Configured values ("" = look it up). */
  readonly instanceId: string;
  readonly region: string;
  /** Looked up only when `needVpcId` and empty. */
  readonly vpcId: string;
  readonly needVpcId: boolean;
}

const TOKEN_TTL_SECONDS = '300';

async function send(url: string, init: RequestInit, timeoutMs: number): Promise<string> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url}: HTTP ${res.status}`);
  return text.trim();
}

/** One IMDSv2 session: a token, then GETs of meta-data paths with it. */
async function session(options: MetadataOptions): Promise<(path: string) => Promise<string>> {
  const base = options.endpoint.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 2000;
  const token = await send(`${base}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': TOKEN_TTL_SECONDS } }, timeoutMs);
  return (path) => send(`${base}/latest/meta-data/${path}`, { method: 'GET', headers: { 'x-aws-ec2-metadata-token': token } }, timeoutMs);
}

/** This instance's primary private IPv4 address (meta-data/local-ipv4); one attempt, plain errors. */
export async function metadataLocalIPv4(options: MetadataOptions): Promise<string> {
  const get = await session(options);
  return get('local-ipv4');
}

/**
 * The IPv4 CIDR blocks of the VPC of this instance's primary interface
 * (meta-data/network/interfaces/macs/<mac>/vpc-ipv4-cidr-blocks, one a line);
 * one attempt, plain errors.
 */
export async function metadataVpcCidrs(options: MetadataOptions): Promise<string[]> {
  const get = await session(options);
  const mac = await get('mac');
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new Error(`meta-data/mac is not a MAC address: ${JSON.stringify(mac.slice(0, 40))}`);
  const text = await get(`network/interfaces/macs/${mac}/vpc-ipv4-cidr-blocks`);
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/** Fetches what `wanted` leaves empty; throws E_UNAVAILABLE with the endpoint named. */
export async function resolveIdentity(wanted: IdentityWanted, options: MetadataOptions): Promise<InstanceIdentity> {
  const needs = wanted.instanceId === '' || wanted.region === '' || (wanted.needVpcId && wanted.vpcId === '');
  if (!needs) return { instanceId: wanted.instanceId, region: wanted.region, vpcId: wanted.vpcId };
  const base = options.endpoint.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 2000;
  const attempts = options.attempts ?? 3;
  let last: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const token = await send(`${base}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': TOKEN_TTL_SECONDS } }, timeoutMs);
      const get = (path: string): Promise<string> =>
        send(`${base}/latest/meta-data/${path}`, { method: 'GET', headers: { 'x-aws-ec2-metadata-token': token } }, timeoutMs);
      const instanceId = wanted.instanceId !== '' ? wanted.instanceId : await get('instance-id');
      const region = wanted.region !== '' ? wanted.region : await get('placement/region');
      let vpcId = wanted.vpcId;
      if (wanted.needVpcId && vpcId === '') {
        const mac = await get('mac');
        vpcId = await get(`network/interfaces/macs/${mac}/vpc-id`);
      }
      return { instanceId, region, vpcId };
    } catch (err) {
      last = err;
      if (attempt < attempts) await new Promise((r) => setTimeout(r, 250 * attempt));
    }
  }
  throw new TrellisError(
    ErrorCode.Unavailable,
    `cannot read the instance metadata at ${base} (IMDSv2): ${(last as Error)?.message ?? String(last)}; ` +
      'set instanceId, vpc.region and vpc.vpcId, or vpc.metadataEndpoint',
    { cause: last },
  );
}
