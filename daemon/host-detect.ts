// Filling in what the configuration leaves out about this host, from the host
// itself: `interface` and `hostIP` from the default route (or from each
// other: the interface that carries hostIP, the address of the interface),
// `hostIP` from the instance metadata (local-ipv4) in VPC mode, the veth
// MTU (cni.mtu) from the interface, and in VPC mode the VPC's CIDR blocks
// (egress.nonMasqueradeCidrs, and what decides egress.masquerade). Each
// filled-in value carries a note saying where it came from, shown by
// `trellisd --check-config`.
//
// Invariants: a configured value is never replaced; only this network
// namespace's routes and links are read (`ip -j`), and the metadata service
// only at vpc.metadataEndpoint, only when vpc.enabled and a value it gives is unset.
// A value that cannot be found is an E_CONFIG error naming the key to set,
// except the VPC CIDR blocks: without them egress masquerade stays off (noted)
// unless it is set on.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { TrellisConfig } from '../src/config/load.js';
import { envName, flagName } from '../src/config/schema.js';
import { ErrorCode, TrellisError } from '../src/errors.js';
import { metadataLocalIPv4, metadataVpcCidrs } from '../src/aws/metadata.js';
import { egressCidrProblems } from '../src/config/load.js';
import { interfaceMtu } from './cni-install.js';

export interface Detection {
  config: TrellisConfig;
  /** Key path → where its value came from, for keys this module filled in. */
  notes: Map<string, string>;
}

interface RouteJson {
  dst?: string;
  dev?: string;
  prefsrc?: string;
  metric?: number;
}

interface AddrJson {
  ifname?: string;
  addr_info?: Array<{ family?: string; local?: string; scope?: string }>;
}

async function ipJson<T>(args: string[]): Promise<T[]> {
  const { stdout } = await promisify(execFile)('ip', ['-j', ...args], { encoding: 'utf8' });
  return stdout.trim() === '' ? [] : (JSON.parse(stdout) as T[]);
}

function missing(key: string, why: string): TrellisError {
  return new TrellisError(ErrorCode.Config, `${key} is not set and cannot be detected: ${why}; set it in the file, with --${flagName(key)} or ${envName(key)}`);
}

/** The interface of the IPv4 default route with the lowest metric, and its preferred source. */
export async function defaultRoute(): Promise<{ dev: string; prefsrc: string | undefined } | undefined> {
  const routes = (await ipJson<RouteJson>(['-4', 'route', 'show', 'default'])).filter((r) => r.dev !== undefined);
  routes.sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0));
  const best = routes[0];
  return best === undefined ? undefined : { dev: best.dev as string, prefsrc: best.prefsrc };
}

/** The global IPv4 addresses of each interface. */
async function addresses(dev?: string): Promise<Array<{ ifname: string; local: string }>> {
  const links = await ipJson<AddrJson>(['-4', 'addr', 'show', ...(dev === undefined ? [] : ['dev', dev])]);
  return links.flatMap((l) =>
    (l.addr_info ?? []).filter((a) => a.family === 'inet' && a.scope === 'global' && a.local !== undefined).map((a) => ({ ifname: l.ifname ?? '', local: a.local as string })),
  );
}

/** The configuration with hostIP, interface (and cni.mtu when cni.install) filled in. */
export async function detectHost(config: TrellisConfig, env: NodeJS.ProcessEnv = process.env): Promise<Detection> {
  const notes = new Map<string, string>();
  let { hostIP, interface: iface } = config;
  if (env[envName('nodeName')] !== undefined && env[envName('nodeName')] === config.nodeName) notes.set('nodeName', `from ${envName('nodeName')}`);
  if (hostIP !== '' && env[envName('hostIP')] === hostIP) notes.set('hostIP', `from ${envName('hostIP')}`);
  if (hostIP === '' && config.vpc.enabled) {
    try {
      hostIP = await metadataLocalIPv4({ endpoint: config.vpc.metadataEndpoint });
    } catch (err) {
      throw missing('hostIP', `the instance metadata at ${config.vpc.metadataEndpoint} gave no local-ipv4 (${(err as Error).message})`);
    }
    notes.set('hostIP', 'from the instance metadata (local-ipv4)');
  }
  if (iface === '' && hostIP !== '') {
    const holder = (await addresses()).find((a) => a.local === hostIP);
    if (holder === undefined) throw missing('interface', `no interface holds hostIP ${hostIP}`);
    iface = holder.ifname;
    notes.set('interface', `the interface holding ${hostIP}`);
  }
  if (iface === '') {
    const route = await defaultRoute();
    if (route === undefined) throw missing('interface', 'there is no IPv4 default route');
    iface = route.dev;
    notes.set('interface', 'detected from the default route');
    if (hostIP === '' && route.prefsrc !== undefined) {
      hostIP = route.prefsrc;
      notes.set('hostIP', 'detected from the default route');
    }
  }
  if (hostIP === '') {
    const first = (await addresses(iface))[0];
    if (first === undefined) throw missing('hostIP', `interface ${iface} has no global IPv4 address`);
    hostIP = first.local;
    notes.set('hostIP', notes.get('interface') === 'detected from the default route' ? 'detected from the default route' : `the address of ${iface}`);
  }
  let cni = config.cni;
  if (cni.install && cni.mtu === undefined) {
    cni = { ...cni, mtu: Math.min(65535, await interfaceMtu(iface)) };
    notes.set('cni.mtu', `detected from ${iface}`);
  }
  const egress = await detectVpcCidrs(config, notes);
  return { config: { ...config, hostIP, interface: iface, cni, egress }, notes };
}

/**
 * In VPC mode, the VPC's CIDR blocks from the instance metadata, when egress
 * needs them: to decide egress.masquerade, or as egress.nonMasqueradeCidrs.
 * Unreadable, they leave masquerade off (it cannot be decided) unless it is
 * set on, where translating traffic inside the VPC would be wrong: an error.
 */
async function detectVpcCidrs(config: TrellisConfig, notes: Map<string, string>): Promise<TrellisConfig['egress']> {
  const egress = config.egress;
  if (!config.vpc.enabled || egress.masquerade === false || (egress.masquerade !== undefined && egress.nonMasqueradeCidrs !== undefined)) return egress;
  let vpcCidrs: string[];
  try {
    vpcCidrs = await metadataVpcCidrs({ endpoint: config.vpc.metadataEndpoint });
    const bad = egressCidrProblems('the instance metadata vpc-ipv4-cidr-blocks', vpcCidrs);
    if (bad.length > 0) throw new Error(bad.join('; '));
  } catch (err) {
    const why = `the instance metadata at ${config.vpc.metadataEndpoint} gave no VPC CIDR blocks (${(err as Error).message})`;
    if (egress.masquerade === true && egress.nonMasqueradeCidrs === undefined) throw missing('egress.nonMasqueradeCidrs', why);
    return { ...egress, vpcCidrs: undefined, vpcCidrsUnknown: why };
  }
  if (egress.nonMasqueradeCidrs === undefined) notes.set('egress.nonMasqueradeCidrs', 'the VPC CIDR(s) from the instance metadata');
  return { ...egress, nonMasqueradeCidrs: egress.nonMasqueradeCidrs ?? vpcCidrs, vpcCidrs };
}
