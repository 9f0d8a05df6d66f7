// At start, before the node claims anything: pods already running on this
// host (their /32 routes to their veths, which the CNI plugin installed under
// Trellis's protocol) whose addresses the node holds no record of. Their
// block was taken from the node while it was away (collected after
// gc.deadNodeAfter, or `trellisctl node remove`), and a restarted trellisd
// would otherwise be free to claim that block again and hand the same
// addresses to new pods. Those blocks are never claimed again in this run
// (Ipam.guardLocalAddresses); each is logged and counted in
// trellis_blocks_lost_total. The pods themselves keep addresses nobody routes
// to them: restarting them is the operator's call (docs/lifecycle.md).

import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { formatAddress, maxLen } from '../src/core/cidr.js';
import type { KernelRoute } from '../src/core/route.js';
import { describeError } from '../src/errors.js';

export interface LocalPodsOptions {
  /** The kernel's routes of Trellis's table and protocol (RouteProgrammer.list). */
  readonly routes: () => Promise<KernelRoute[]>;
  readonly ipam: { guardLocalAddresses(addresses: readonly string[]): Promise<string[]> };
  readonly log: Logger;
  /** trellis_blocks_lost_total */
  readonly counter: Counter;
}

/** The addresses of local pods: host routes (/32, /128) straight to a device, no gateway. */
export function podAddresses(routes: readonly KernelRoute[]): string[] {
  return routes
    .filter((r) => r.type === 'unicast' && r.gateway === undefined && (r.ifName !== undefined || r.ifIndex !== undefined) && r.dst.len === maxLen(r.dst.family))
    .map((r) => formatAddress({ family: r.dst.family, addr: r.dst.addr }));
}

/** Guards the blocks of local pods' addresses the node no longer owns; returns them. Never throws: a failed look is logged. */
export async function guardLocalPods(o: LocalPodsOptions): Promise<string[]> {
  let addresses: string[];
  try {
    addresses = podAddresses(await o.routes());
  } catch (err) {
    o.log.warn({ err: describeError(err) }, "cannot list this host's pod routes: blocks taken while it was away are not guarded");
    return [];
  }
  const taken = await o.ipam.guardLocalAddresses(addresses);
  if (taken.length > 0) {
    o.counter.inc(taken.length);
    o.log.error(
      { blocks: taken, pods: addresses.length },
      'pods on this host use addresses of blocks taken from this node while it was away (collected or removed): those blocks are not claimed again; restart those pods',
    );
  }
  return taken;
}
