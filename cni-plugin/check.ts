// CHECK of the trellis plugin: compares what the kernel and trellisd hold with
// the `prevResult` of the attachment's ADD.
//
// Invariants:
//  * Read-only: CHECK changes nothing, in the kernel or in trellisd.
//  * Main mode checks, in this order: trellisd still holds the allocation of
//    (container id, ifname) at the address of prevResult (105 otherwise); the
//    pod interface exists in CNI_NETNS, is up and has the address /32, and
//    the pod's default route goes via 169.254.1.1 on it; the host veth exists
//    and is up, with the /32 route to it under trellisd's protocol and table
//    (104 otherwise). MACs are not compared: a later plugin (tuning) may change them.
//  * IPAM mode checks only the allocation.

import { Code, CniError, GATEWAY, vethNames, type CniEnv, type NetConf } from './cni.js';
import { checkNetns, classify, parseJsonLines, runBatch } from './ip-batch.js';
import { TrellisdClient, type AllocationEntry } from './trellisd-client.js';

function flags(link: Record<string, unknown>): string[] {
  return Array.isArray(link.flags) ? link.flags.map(String) : [];
}

interface Expected {
  readonly address: string;
}

function list(v: unknown): Array<Record<string, unknown>> {
  return Array.isArray(v) ? v.filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null) : [];
}

/** The IPv4 address prevResult gives the attachment (main mode: of the pod interface). */
function expected(env: CniEnv, conf: NetConf): Expected {
  const prev = conf.prevResult;
  if (prev === undefined) throw new CniError(Code.InvalidConfig, 'CHECK needs prevResult (the result of the ADD)');
  const ips = list(prev.ips).filter((ip) => typeof ip.address === 'string' && !ip.address.includes(':'));
  let mine = ips;
  if (conf.mode === 'main') {
    const index = list(prev.interfaces).findIndex((i) => i.name === env.ifName && i.sandbox === env.netns);
    if (index < 0) throw new CniError(Code.CheckFailed, `prevResult has no interface ${env.ifName} in sandbox ${env.netns}`);
    mine = ips.filter((ip) => ip.interface === index);
  }
  const address = mine[0]?.address;
  if (typeof address !== 'string') throw new CniError(Code.CheckFailed, `prevResult has no IPv4 address for ${env.ifName}`);
  return { address: address.split('/')[0]! };
}

function checkAllocation(entries: readonly AllocationEntry[], env: CniEnv, want: Expected): void {
  const held = entries.find((e) => e.containerId === env.containerId && e.ifName === env.ifName);
  if (held === undefined) {
    throw new CniError(Code.AllocationMissing, `trellisd holds no allocation for container ${env.containerId} interface ${env.ifName}`);
  }
  if (held.address !== want.address) {
    throw new CniError(Code.AllocationMissing, `trellisd holds ${held.address} for container ${env.containerId} interface ${env.ifName}, prevResult says ${want.address}`);
  }
}

export async function check(env: CniEnv, conf: NetConf): Promise<void> {
  const want = expected(env, conf);
  const client = new TrellisdClient(conf.socket, conf.timeoutMs);
  if (conf.mode === 'ipam') {
    checkAllocation(await client.allocations(), env, want);
    return;
  }
  checkNetns(env.netns);
  const names = vethNames(env.containerId, env.ifName);
  const [allocs, status, podOut, hostOut] = await Promise.all([
    client.allocations(),
    client.status(),
    runBatch(['addr show', 'route show table main'], env.netns, { json: true }),
    runBatch(['link show', 'route show table all'], undefined, { json: true }),
  ]);
  checkAllocation(allocs, env, want);
  if (!podOut.ok) throw classify(podOut, 'reading the pod namespace', env.netns);
  if (!hostOut.ok) throw classify(hostOut, 'reading the host namespace', undefined);
  const [podLinks = [], podRoutes = []] = parseJsonLines(podOut.stdout).map(list);
  const [hostLinks = [], hostRoutes = []] = parseJsonLines(hostOut.stdout).map(list);
  const fail = (msg: string): never => {
    throw new CniError(Code.CheckFailed, msg);
  };

  const podIf = podLinks.find((l) => l.ifname === env.ifName) ?? fail(`interface ${env.ifName} is missing in ${env.netns}`);
  if (!flags(podIf).includes('UP')) fail(`interface ${env.ifName} in ${env.netns} is down`);
  const hasAddress = list(podIf.addr_info).some((a) => a.family === 'inet' && a.local === want.address && a.prefixlen === 32);
  if (!hasAddress) fail(`interface ${env.ifName} in ${env.netns} does not have ${want.address}/32`);
  const defaultRoute = podRoutes.some((r) => r.dst === 'default' && r.gateway === GATEWAY && r.dev === env.ifName);
  if (!defaultRoute) fail(`no default route via ${GATEWAY} dev ${env.ifName} in ${env.netns}`);

  const hostIf = hostLinks.find((l) => l.ifname === names.host) ?? fail(`host veth ${names.host} is missing`);
  if (!flags(hostIf).includes('UP')) fail(`host veth ${names.host} is down`);
  const route = hostRoutes.find((r) => (r.dst === want.address || r.dst === `${want.address}/32`) && r.dev === names.host);
  if (route === undefined) fail(`no host route to ${want.address}/32 via ${names.host}`);
  const table = route!.table === undefined ? 254 : Number(route!.table);
  const protocol = Number(route!.protocol);
  if (protocol !== status.routeProtocol || table !== status.routeTable) {
    fail(`host route to ${want.address}/32 has protocol ${protocol} table ${table}, trellisd uses protocol ${status.routeProtocol} table ${status.routeTable}`);
  }
}
