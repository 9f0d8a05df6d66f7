// Prometheus metrics of the VPC advertiser, registered on trellisd's
// registry. Counters are updated by the EC2 adapter (every attempt) and the
// advertiser; gauges that describe the current state are read on scrape
// (0 until the advertiser is wired, never NaN).

import { Counter, Gauge, type Registry } from 'prom-client';
import type { CallResult, Ec2CallObserver } from '../../src/aws/ec2-routes.js';

export interface VpcGaugeSources {
  leader(): boolean;
  entriesOwned(): number;
  /** When the last pass completed (Unix ms), undefined before the first. */
  lastPassAt(): number | undefined;
  budgetExceeded(): boolean;
  forwarders(): { healthy: number; failed: number };
  unmanaged(): number;
}

export class VpcMetrics implements Ec2CallObserver {
  readonly calls: Counter<'action' | 'result'>;
  readonly retries: Counter<'action'>;
  readonly exhaustedCalls: Counter<'action'>;
  readonly passes: Counter<'result'>;
  private sources: VpcGaugeSources | undefined;
  private reachable: (() => boolean) | undefined;

  constructor(registry: Registry) {
    const registers = [registry];
    const src = (): VpcGaugeSources | undefined => this.sources;
    this.calls = new Counter({ name: 'trellis_vpc_ec2_calls_total', help: 'EC2 API attempts, by action and result (ok, throttled, error).', labelNames: ['action', 'result'], registers });
    this.retries = new Counter({ name: 'trellis_vpc_ec2_retries_total', help: 'EC2 API attempts that were retries of a throttled or failed attempt, by action.', labelNames: ['action'], registers });
    this.exhaustedCalls = new Counter({
      name: 'trellis_vpc_ec2_retries_exhausted_total',
      help: 'EC2 API calls that still failed (throttled, 5xx, network) after their last allowed attempt, by action; the pass is retried later.',
      labelNames: ['action'],
      registers,
    });
    this.passes = new Counter({ name: 'trellis_vpc_passes_total', help: 'VPC advertiser passes run as leader, by result (ok, error).', labelNames: ['result'], registers });
    const gauge = (name: string, help: string, read: (s: VpcGaugeSources) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = src();
          this.set(s === undefined ? 0 : read(s));
        },
      });
    };
    gauge('trellis_vpc_leader', "1 while this node is its subnet's elected VPC advertiser.", (s) => (s.leader() ? 1 : 0));
    gauge('trellis_vpc_entries_owned', "The subnet's entries in the VPC route tables after this advertiser's last pass.", (s) => s.entriesOwned());
    gauge('trellis_vpc_last_pass_timestamp_seconds', 'Unix time at which the last pass as leader completed; 0 before the first.', (s) => (s.lastPassAt() ?? 0) / 1000);
    gauge('trellis_vpc_budget_exceeded', '1 when some route table has fewer entries to give than there are subnets needing one: some pods are not routed.', (s) => (s.budgetExceeded() ? 1 : 0));
    gauge('trellis_vpc_unmanaged_routes', 'Routes inside the pod network that Trellis did not make (reported, never deleted).', (s) => s.unmanaged());
    const reach = (): (() => boolean) | undefined => this.reachable;
    new Gauge({
      name: 'trellis_vpc_ec2_reachable',
      help: "1 while EC2 answers this node's calls (refusals included); 0 once it has not answered for vpc.unreachableAfter: the node is then no advertiser candidate.",
      registers,
      collect() {
        this.set(reach()?.() === false ? 0 : 1);
      },
    });
    new Gauge({
      name: 'trellis_vpc_forwarders',
      help: "Forwarders of this node's subnet by verdict (healthy, failed), as the advertiser judges them.",
      labelNames: ['state'],
      registers,
      collect() {
        const f = src()?.forwarders();
        if (f === undefined) return;
        this.set({ state: 'healthy' }, f.healthy);
        this.set({ state: 'failed' }, f.failed);
      },
    });
  }

  setSources(sources: VpcGaugeSources): void {
    this.sources = sources;
  }

  /** Where trellis_vpc_ec2_reachable reads from (1 until set). */
  setReachable(read: () => boolean): void {
    this.reachable = read;
  }

  call(action: string, result: CallResult): void {
    this.calls.inc({ action, result });
  }

  retry(action: string): void {
    this.retries.inc({ action });
  }

  exhausted(action: string): void {
    this.exhaustedCalls.inc({ action });
  }
}
