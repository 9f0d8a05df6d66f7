// The trellis plugin as an IPAM plugin (`"ipam": {"type": "trellis"}` under a
// main plugin such as ptp): ADD only allocates and returns the address, DEL
// only releases it. The main plugin creates the interface and the routes.
//
// Invariants:
//  * Nothing here touches the kernel.
//  * The address is returned as /32 without gateway or routes, except under
//    ptp: ptp deletes the prefix route of the address it is given (a /32 has
//    none, so ptp fails) and routes that prefix via the gateway, which it also
//    puts on its host veth. For ptp the address is returned as a /31 with the
//    gateway 169.254.1.1: no broadcast address, no other pod's address on-link.

import { GATEWAY, allocateRequest, formatResult, type CniEnv, type NetConf } from './cni.js';
import { TrellisdClient } from './trellisd-client.js';

export async function ipamAdd(env: CniEnv, conf: NetConf): Promise<Record<string, unknown>> {
  const client = new TrellisdClient(conf.socket, conf.timeoutMs);
  const got = await client.allocate(allocateRequest(env, conf));
  const ptp = conf.type === 'ptp' && !got.address.includes(':');
  const ip = ptp ? { address: `${got.address}/31`, gateway: GATEWAY } : { address: `${got.address}/${got.prefixLength}` };
  return formatResult(conf.cniVersion, { interfaces: [], ips: [ip], routes: [] }, undefined);
}

export async function ipamDel(env: CniEnv, conf: NetConf): Promise<void> {
  await new TrellisdClient(conf.socket, conf.timeoutMs).release(env.containerId, env.ifName);
}
