// Pure checks of the endpoints Trellis is given: its HTTP listen address (and the
// probe endpoint peers derive from it) and the etcd connection settings. Shared
// by the configuration loader, trellisctl and the adapters, so that none of them
// imports another's internals.

import { parseAddress } from './cidr.js';

export interface EtcdTls {
  /** CA bundle that signed the etcd server certificate. */
  ca?: string | undefined;
  /** Client certificate (for etcd's --client-cert-auth). */
  cert?: string | undefined;
  /** Client private key. */
  key?: string | undefined;
}

export interface EtcdSettings {
  endpoints: string[];
  tls?: EtcdTls | undefined;
  username?: string | undefined;
  password?: string | undefined;
  /** Deadline for unary calls (get, put, txn, lease grant), ms. */
  requestTimeoutMs?: number | undefined;
  dialTimeoutMs?: number | undefined;
}

/** Every problem with the etcd settings that can be seen without connecting. */
export function etcdSettingsProblems(settings: EtcdSettings): string[] {
  const problems: string[] = [];
  if (settings.endpoints.length === 0) problems.push('no etcd endpoint configured (etcd.endpoints)');
  for (const e of settings.endpoints) {
    if (!/^https?:\/\/[^/]+$/.test(e)) problems.push(`etcd endpoint ${JSON.stringify(e)} must look like http://host:port or https://host:port`);
  }
  const secure = settings.endpoints.some((e) => e.startsWith('https://'));
  const tls = settings.tls ?? {};
  if ((tls.cert === undefined) !== (tls.key === undefined)) problems.push('etcd.tls.cert and etcd.tls.key must be given together');
  if (!secure && (tls.ca !== undefined || tls.cert !== undefined)) {
    problems.push('etcd TLS files are configured but the endpoints use http://; use https:// endpoints');
  }
  if (secure && tls.ca === undefined) problems.push('etcd endpoints use https:// but no CA is configured (etcd.tls.ca)');
  if ((settings.username === undefined) !== (settings.password === undefined)) {
    problems.push('etcd.username and etcd.password must be given together');
  }
  return problems;
}

/** "198.18.0.10:9653" / "[fd00::1]:9653" → host and port; undefined when malformed. */
export function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(text);
  if (m === null) return undefined;
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  try {
    parseAddress(host);
  } catch {
    return undefined;
  }
  return port >= 0 && port <= 65535 ? { host, port } : undefined;
}

/**
 * The host:port that peers may probe for this node's HTTP endpoint, or ""
 * when it listens on loopback only (or not at all); a wildcard listen
 * address is published as the host IP.
 */
export function probeEndpoint(listen: string, hostIP: string): string {
  const where = parseListen(listen);
  if (where === undefined) return '';
  const host = parseAddress(where.host);
  const loopback = host.family === 4 ? host.addr >> 24n === 127n : host.addr === 1n;
  if (loopback) return '';
  if (host.addr !== 0n) return listen;
  return hostIP.includes(':') ? `[${hostIP}]:${where.port}` : `${hostIP}:${where.port}`;
}
