// trellisd's HTTP endpoint (http.listen, loopback by default):
//   GET /healthz  200 while the process serves requests
//   GET /readyz   200 once the first full sync from etcd and the first
//                 reconcile pass are done; 503 with the reason before;
//                 then a line per setting in effect (egress masquerade)
//                 and per problem that leaves the node ready (BGP session down)
//   GET /metrics  Prometheus text format
//   GET /bgp      the BGP exporter's sessions and announcements (JSON; bgp.enabled only)
// The subnet's VPC advertiser also probes this port (TCP) to judge whether
// this host can forward, so it must listen on the host IP in VPC mode.

import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';
import { parseListen } from '../src/core/endpoints.js';

export interface HealthSource {
  /** undefined when ready, else why not. */
  notReadyReason(): string | undefined;
  /** Problems that do not make the node unready (e.g. a BGP session down), listed after the verdict. */
  readyDetails?(): string[];
  /** GET /bgp: the BGP exporter's status as JSON (404 when BGP is off). */
  bgpStatus?(): unknown;
}

export async function startHttpServer(listen: string, metrics: Metrics, health: HealthSource, log: Logger): Promise<Server> {
  const where = parseListen(listen);
  if (where === undefined) throw new Error(`bad http.listen ${JSON.stringify(listen)}`);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const reason = health.notReadyReason();
      const details = (health.readyDetails?.() ?? []).map((d) => `${d}\n`).join('');
      res.writeHead(reason === undefined ? 200 : 503, { 'content-type': 'text/plain' }).end((reason === undefined ? 'ready\n' : `not ready: ${reason}\n`) + details);
    } else if (path === '/bgp' && health.bgpStatus?.() !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(health.bgpStatus?.())}\n`);
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /readyz or /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  log.info({ listen, port: typeof bound === 'object' && bound !== null ? bound.port : undefined }, 'HTTP endpoint listening');
  return server;
}
