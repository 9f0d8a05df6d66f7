// A tiny EC2 instance metadata service (IMDSv2) for tests: `PUT
// /latest/api/token` (which needs the TTL header) hands out a session token,
// and `GET /latest/meta-data/<path>` answers with the configured values only
// when that token is sent (401 otherwise, 404 for a path it does not hold),
// as the real service does. It serves what moto's does not: local-ipv4 on a
// lab address and the interface paths (network/interfaces/macs/<mac>/…).
// Every request is recorded, so a test can tell what was asked for.
//
// It listens on 127.0.0.1 in this process; with `netns` it is also reached
// at http://127.0.0.1:<nsPort> inside that lab namespace (lab/ns-forward.ts),
// where a trellisd or `trellisd --check-config` runs.
// Invariant: loopback only; closed when the test ends (with `t`).

import { createServer } from 'node:http';
import { onTeardown, type Teardown } from './cleanup.js';
import { fromNamespace } from './ns-forward.js';

export interface ImdsOptions {
  /** meta-data path (without /latest/meta-data/) → answer. */
  values: Record<string, string>;
  /** Also serve inside this namespace, at 127.0.0.1:`nsPort`. */
  netns?: string;
  /** Port inside the namespace (default 8080). */
  nsPort?: number;
}

export interface Imds {
  /** Base URL in this process. */
  readonly endpoint: string;
  /** Base URL inside `netns` (when given). */
  readonly nsEndpoint: string | undefined;
  /** `METHOD path` of every request, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** The metadata paths of an instance with `mac` in a VPC of `vpcCidrs`, at `localIPv4`. */
export function instanceValues(o: { localIPv4: string; mac?: string; vpcCidrs: string[]; instanceId?: string; region?: string; vpcId?: string }): Record<string, string> {
  const mac = o.mac ?? '02:00:c6:12:01:0a';
  const iface = `network/interfaces/macs/${mac}`;
  return {
    'instance-id': o.instanceId ?? 'i-0lab',
    'placement/region': o.region ?? 'us-east-1',
    mac,
    'local-ipv4': o.localIPv4,
    [`${iface}/local-ipv4s`]: o.localIPv4,
    [`${iface}/vpc-id`]: o.vpcId ?? 'vpc-0lab',
    [`${iface}/vpc-ipv4-cidr-block`]: o.vpcCidrs[0] ?? '',
    [`${iface}/vpc-ipv4-cidr-blocks`]: o.vpcCidrs.join('\n'),
  };
}

export async function startImds(t: Teardown | undefined, o: ImdsOptions): Promise<Imds> {
  const token = `lab-token-${process.pid}-${Date.now()}`;
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    requests.push(`${req.method} ${url}`);
    if (url === '/latest/api/token') {
      if (req.method !== 'PUT') res.writeHead(405).end();
      else if (req.headers['x-aws-ec2-metadata-token-ttl-seconds'] === undefined) res.writeHead(400).end();
      else res.end(token);
      return;
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== token) {
      res.writeHead(401).end();
      return;
    }
    const prefix = '/latest/meta-data/';
    const body = url.startsWith(prefix) ? o.values[url.slice(prefix.length)] : undefined;
    if (req.method !== 'GET' || body === undefined) res.writeHead(404).end();
    else res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  let close = (): Promise<void> =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  let nsEndpoint: string | undefined;
  if (o.netns !== undefined) {
    const nsPort = o.nsPort ?? 8080;
    try {
      const fwd = await fromNamespace(undefined, o.netns, '127.0.0.1', nsPort, port);
      const closeServer = close;
      close = async () => {
        await fwd.close();
        await closeServer();
      };
      nsEndpoint = `http://127.0.0.1:${nsPort}`;
    } catch (err) {
      await close();
      throw err;
    }
  }
  let closed: Promise<void> | undefined;
  const imds: Imds = { endpoint: `http://127.0.0.1:${port}`, nsEndpoint, requests, close: () => (closed ??= close()) };
  onTeardown(t, () => imds.close());
  return imds;
}
