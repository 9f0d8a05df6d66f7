// ADD and DEL of the trellis plugin as the main (interface) plugin: a veth
// pair per attachment, the pod end with the allocated address as /32 and a
// default route via the link-local gateway 169.254.1.1, the host end with
// proxy ARP and a /32 route stamped with trellisd's route protocol and table
// (trellisd's route agent leaves such routes alone).
//
// Invariants:
//  * ADD either returns a result with everything in place, or undoes what it
//    did (the veth, and with it its routes; the allocation) before failing.
//  * The pod side is configured by one batch inside CNI_NETNS that creates the
//    veth and moves the host end out to the plugin's own namespace; the host
//    side by one batch here. Both processes start as soon as the allocation
//    request is sent, so their start-up and the pod's wiring overlap the call
//    to trellisd; only the address and the host route wait for its answer.
//  * DEL is idempotent: a missing veth, netns or allocation is success.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Code, CniError, GATEWAY, allocateRequest, formatResult, vethAlias, vethNames, type CniEnv, type NetConf } from './cni.js';
import { IpBatch, checkNetns, classify, isMissingDevice, q, runBatch } from './ip-batch.js';
import { MalformedAnswer } from './api-wire.js';
import { TrellisdClient, Unreachable, type Allocation } from './trellisd-client.js';

/** sysctls of the host end: proxy ARP, answered at once (a pod whose neighbour entry for the gateway was flushed still reaches it), and IPv4 forwarding on: the host routes its pods. */
function hostSysctls(veth: string): void {
  const conf = `/proc/sys/net/ipv4/conf/${veth}`;
  writeFileSync(`${conf}/proxy_arp`, '1');
  writeFileSync(`/proc/sys/net/ipv4/neigh/${veth}/proxy_delay`, '0');
  if (readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() !== '1') writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
}

export async function add(env: CniEnv, conf: NetConf): Promise<Record<string, unknown>> {
  checkNetns(env.netns);
  const names = vethNames(env.containerId, env.ifName);
  const ifName = q(env.ifName);
  const mtu = conf.mtu === undefined ? '' : ` mtu ${conf.mtu}`;
  const client = new TrellisdClient(conf.socket, conf.timeoutMs);
  // A host veth of this very attachment left by an ADD that never finished
  // (its name is derived from the container id and interface): replace it.
  if (existsSync(`/proc/sys/net/ipv4/conf/${names.host}`)) {
    const gone = await runBatch([`link del dev ${names.host}`]);
    if (!gone.ok && !isMissingDevice(gone)) throw classify(gone, `deleting the leftover ${names.host}`, undefined);
  }

  // The request goes out first; the batches are spawned (synchronously, a few
  // ms) while trellisd works. A request that cannot even be sent (no
  // trellisd) fails here, before anything exists to undo.
  let onSent!: () => void;
  const sent = new Promise<void>((resolve) => (onSent = resolve));
  const allocating = client.allocate(allocateRequest(env, conf), onSent);
  await Promise.race([sent, allocating.then(() => undefined)]);

  const pod = new IpBatch(env.netns);
  pod.write(
    `link add name ${ifName} address ${names.podMac}${mtu} type veth peer name ${names.host} address ${names.hostMac}${mtu} netns /proc/${process.pid}/ns/net`,
    'link set dev lo up',
    `link set dev ${ifName} up`,
    `route add ${GATEWAY} dev ${ifName} scope link`,
    `route add default via ${GATEWAY} dev ${ifName}`,
    `neigh replace ${GATEWAY} lladdr ${names.hostMac} dev ${ifName} nud permanent`,
  );
  const host = new IpBatch(undefined);

  let allocation: Allocation | undefined;
  let mayHoldAllocation = true;
  try {
    try {
      allocation = await allocating;
    } catch (err) {
      // A refusal, or a request that never reached trellisd, allocated nothing; a timeout or reset may have,
      // and an answer the plugin cannot read (a field missing) did.
      mayHoldAllocation = (err instanceof Unreachable && err.mayHaveActed) || err instanceof MalformedAnswer;
      throw err;
    }
    if (allocation.address.includes(':')) {
      throw new CniError(Code.InvalidConfig, `trellisd allocated the IPv6 address ${allocation.address}: the trellis plugin wires IPv4 pods only (use it as an IPAM plugin for IPv6)`);
    }
    const cidr = `${allocation.address}/${allocation.prefixLength}`;
    pod.write(`addr add ${cidr} dev ${ifName}`);
    const podDone = pod.finish();
    // The host side needs the host end of the veth, which the pod batch's
    // first command creates: usually long done by now, else wait for the batch.
    if (!existsSync(`/proc/sys/net/ipv4/conf/${names.host}`)) {
      const early = await podDone;
      if (!early.ok) throw classify(early, 'configuring the pod side', env.netns);
    }
    let sysctlError: unknown;
    try {
      hostSysctls(names.host);
    } catch (err) {
      sysctlError = err;
    }
    host.write(
      `link set dev ${names.host} up alias ${q(vethAlias(conf.name, env.containerId, env.ifName))}`,
      `route add ${cidr} dev ${names.host} proto ${allocation.routeProtocol} table ${allocation.routeTable} scope link`,
    );
    const [podOut, hostOut] = await Promise.all([podDone, host.finish()]);
    if (!podOut.ok) throw classify(podOut, 'configuring the pod side', env.netns);
    if (sysctlError !== undefined) throw new CniError(Code.KernelRefused, `setting proxy ARP on ${names.host}: ${(sysctlError as Error).message}`);
    if (!hostOut.ok) throw classify(hostOut, 'configuring the host side', undefined);
    return formatResult(
      conf.cniVersion,
      {
        interfaces: [
          { name: names.host, mac: names.hostMac, ...(conf.mtu !== undefined ? { mtu: conf.mtu } : {}) },
          { name: env.ifName, mac: names.podMac, ...(conf.mtu !== undefined ? { mtu: conf.mtu } : {}), sandbox: env.netns },
        ],
        ips: [{ address: cidr, gateway: GATEWAY, interface: 1 }],
        routes: [{ dst: '0.0.0.0/0', gw: GATEWAY }],
      },
      conf.prevResult,
    );
  } catch (err) {
    await rollback(pod, host, names.host, mayHoldAllocation ? client : undefined, env);
    throw err;
  }
}

/** Undoes a failed ADD: lets the pod batch end, deletes the veth, releases the allocation. */
async function rollback(pod: IpBatch, host: IpBatch, veth: string, client: TrellisdClient | undefined, env: CniEnv): Promise<void> {
  await pod.finish();
  // The host batch is still idle unless the host side itself failed; then a fresh one deletes.
  if (host.ended) await runBatch([`link del dev ${veth}`]);
  else {
    host.write(`link del dev ${veth}`);
    await host.finish();
  }
  if (client !== undefined) await client.release(env.containerId, env.ifName).catch(() => undefined);
}

export async function del(env: CniEnv, conf: NetConf): Promise<void> {
  const names = vethNames(env.containerId, env.ifName);
  const client = new TrellisdClient(conf.socket, conf.timeoutMs);
  // Deleting the host end takes the pod end (and the /32 route) with it.
  const [link, released] = await Promise.allSettled([runBatch([`link del dev ${names.host}`]), client.release(env.containerId, env.ifName)]);
  if (link.status === 'fulfilled' && !link.value.ok && !isMissingDevice(link.value)) {
    throw classify(link.value, `deleting ${names.host}`, undefined);
  }
  if (link.status === 'rejected') throw link.reason;
  if (released.status === 'rejected') throw released.reason;
}
