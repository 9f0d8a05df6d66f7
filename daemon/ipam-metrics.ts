// Prometheus metrics of the local IPAM API (daemon/ipam-service.ts), on
// trellisd's registry. Counters and the latency histogram are updated by the
// service on each call; the usage gauges (addresses allocated and free in
// this node's blocks, blocks held) are read from the last usage refresh,
// which the service runs on a timer, never on scrape.
//
// Invariants: the usage gauges are 0 until the first refresh; a scrape costs
// no etcd read.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** This node's IPAM usage as of the last refresh. */
export interface IpamUsage {
  /** Addresses allocated on this node (all its blocks). */
  readonly allocated: number;
  /** Addresses not allocated in the node's blocks of its subnet. */
  readonly free: number;
  /** Blocks this node holds in its subnet. */
  readonly blocks: number;
}

export class IpamMetrics {
  readonly allocationDuration: Histogram<'result'>;
  readonly allocations: Counter<'result'>;
  readonly releases: Counter<'result'>;
  readonly exhausted: Counter;
  readonly gcReleased: Counter;
  private usage: IpamUsage | undefined;

  constructor(registry: Registry) {
    const registers = [registry];
    this.allocationDuration = new Histogram({
      name: 'trellis_ipam_allocation_duration_seconds',
      help: 'Duration of IPAM allocate calls (allocation in etcd and its block advertised), by result (ok, error).',
      labelNames: ['result'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.allocations = new Counter({ name: 'trellis_ipam_allocations_total', help: 'IPAM allocate calls answered, by result (ok, error).', labelNames: ['result'], registers });
    this.releases = new Counter({
      name: 'trellis_ipam_releases_total',
      help: 'IPAM release calls answered, by result (released, none: the pair held no address, error).',
      labelNames: ['result'],
      registers,
    });
    this.exhausted = new Counter({ name: 'trellis_ipam_exhausted_total', help: "Allocate calls refused because the node's subnet has no address and no block left.", registers });
    this.gcReleased = new Counter({ name: 'trellis_ipam_gc_released_total', help: 'Addresses released by CNI GC calls (attachments no longer valid).', registers });
    const usage = (): IpamUsage | undefined => this.usage;
    const gauge = (name: string, help: string, read: (u: IpamUsage) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const u = usage();
          this.set(u === undefined ? 0 : read(u));
        },
      });
    };
    gauge('trellis_ipam_addresses_allocated', 'Addresses allocated on this node (0 before the first usage refresh).', (u) => u.allocated);
    gauge('trellis_ipam_addresses_free', "Addresses not allocated in this node's blocks; more blocks may still be claimed (0 before the first usage refresh).", (u) => u.free);
    gauge('trellis_ipam_blocks', "Address blocks this node holds in its subnet (0 before the first usage refresh).", (u) => u.blocks);
  }

  setUsage(usage: IpamUsage): void {
    this.usage = usage;
  }
}
