// The egress controller: keeps trellisd's nftables table (`ip trellis`) in step
// with the egress decision (src/core/egress.ts). Masquerade on: the table is
// installed at start and replaced, in one transaction, when the pod network
// changes; a periodic check (routes.resyncInterval) puts it back if it went
// missing. Masquerade off: the table is removed if an earlier run left one.
//
// Invariants: only Trellis's own table is ever created, replaced or deleted;
// a graceful stop leaves it in place (pods keep their egress across a
// restart), `trellisd --withdraw` removes it (removeEgress). A failure to
// install it keeps the node not ready, with nft's message, and is retried.

import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { TrellisConfig } from '../src/config/load.js';
import { formatPrefix, parsePrefix, type Prefix } from '../src/core/cidr.js';
import { decideMasquerade, EGRESS_TABLE, egressRemoveScript, egressRule, egressScript, untranslatedDestinations, type EgressDecision } from '../src/core/egress.js';
import type { Topology } from '../src/core/topology.js';
import { describeError } from '../src/errors.js';
import { applyNftScript, isNftMissing, listNftTable } from '../src/nftables/nft.js';

export interface EgressStatus extends EgressDecision {
  /** Destinations reached untranslated (pod network included); empty when off. */
  readonly untranslated: string[];
  /** The rule in effect, when on. */
  readonly rule: string | undefined;
}

export class EgressController {
  private status: EgressStatus | undefined;
  private script: string | undefined;
  private network: Prefix | undefined;
  private failure: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private applying: Promise<void> = Promise.resolve();
  private readonly gauge: Gauge;

  constructor(
    private readonly config: TrellisConfig,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.gauge = new Gauge({ name: 'trellis_egress_masquerade', help: 'Pod egress masquerade: 1 when the SNAT table is installed, 0 when off or not installed.', registers: [registry] });
  }

  /** Decides, applies, and starts the periodic check. */
  async start(topology: Topology): Promise<void> {
    await this.setTopology(topology);
    this.timer = setInterval(() => void this.check(), this.config.routes.resyncInterval);
    this.timer.unref();
  }

  /** Re-decides from `topology` (its pod network); the table is rewritten only when the script changes. */
  setTopology(topology: Topology): Promise<void> {
    const run = this.applying.then(() => this.apply(topology.network));
    this.applying = run.catch(() => undefined);
    return run;
  }

  /** What is in effect (for /readyz and logs); undefined before start. */
  get state(): EgressStatus | undefined {
    return this.status;
  }

  /** Why the table the decision needs is not installed, else undefined. */
  get notReadyReason(): string | undefined {
    return this.failure === undefined ? undefined : `egress masquerade not installed: ${this.failure}`;
  }

  /** One line for /readyz when masquerade is on (off is the plain case: the metric and the log say it). */
  describe(): string | undefined {
    const s = this.status;
    if (s === undefined || !s.masquerade) return undefined;
    return `egress: masquerade on (${s.reason}); untranslated destinations ${s.untranslated.join(', ')}; rule: ${s.rule}`;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  private async apply(podNetwork: Prefix): Promise<void> {
    const { config } = this;
    this.network = podNetwork;
    const vpcCidrs = config.egress.vpcCidrs?.map(parsePrefix);
    const decision = decideMasquerade({ configured: config.egress.masquerade, vpcEnabled: config.vpc.enabled, vpcCidrs, podNetwork });
    const rules = { podNetwork, nonMasquerade: (config.egress.nonMasqueradeCidrs ?? []).map(parsePrefix), hostIP: config.hostIP };
    const script = decision.masquerade ? egressScript(rules) : egressRemoveScript();
    this.status = {
      ...decision,
      untranslated: decision.masquerade ? untranslatedDestinations(rules).map(formatPrefix) : [],
      rule: decision.masquerade ? egressRule(rules) : undefined,
    };
    if (script === this.script && this.failure === undefined) return;
    try {
      // Off: nft writes nothing unless a table of an earlier run is there to remove.
      if (decision.masquerade || (await listNftTable('ip', EGRESS_TABLE)) !== undefined) await applyNftScript(script);
      this.script = script;
      this.failure = undefined;
      this.gauge.set(decision.masquerade ? 1 : 0);
      if (decision.masquerade) this.log.info({ table: `ip ${EGRESS_TABLE}`, rule: this.status.rule, untranslated: this.status.untranslated, reason: decision.reason }, 'egress masquerade on');
      else this.log.info({ reason: decision.reason }, 'egress masquerade off');
    } catch (err) {
      this.gauge.set(0);
      if (!decision.masquerade) {
        // Nothing to remove where nft is not even installed; other failures are worth a word.
        this.script = script;
        if (!isNftMissing(err)) this.log.warn({ err: describeError(err) }, `could not make sure table ip ${EGRESS_TABLE} is absent`);
        this.log.info({ reason: decision.reason }, 'egress masquerade off');
        return;
      }
      this.failure = describeError(err);
      this.log.error({ err: this.failure }, 'egress masquerade: installing the nftables table failed (retried at the next check)');
    }
  }

  /** Periodic: retries a failed install, and puts back a table that went missing. */
  private async check(): Promise<void> {
    const s = this.status;
    if (s === undefined || !s.masquerade) return;
    const script = this.script;
    try {
      if (this.failure === undefined && (await listNftTable('ip', EGRESS_TABLE)) !== undefined) return;
      if (this.failure === undefined) this.log.warn(`table ip ${EGRESS_TABLE} went missing: installing it again`);
      this.script = undefined;
      const network = this.network;
      if (network !== undefined) {
        const run = this.applying.then(() => this.apply(network));
        this.applying = run.catch(() => undefined);
        await run;
      }
    } catch (err) {
      this.script = script;
      this.log.warn({ err: describeError(err) }, 'egress check failed');
    }
  }
}

/** `trellisd --withdraw`: removes Trellis's egress table if there is one (and nft is installed). */
export async function removeEgress(log: Logger): Promise<void> {
  try {
    if ((await listNftTable('ip', EGRESS_TABLE)) !== undefined) await applyNftScript(egressRemoveScript());
  } catch (err) {
    if (!isNftMissing(err)) log.warn({ err: describeError(err) }, `could not remove table ip ${EGRESS_TABLE}`);
  }
}

/** Comment lines for --check-config about what egress.masquerade will be. */
export function describeEgressDefault(config: TrellisConfig): string {
  if (config.egress.masquerade !== undefined) return '';
  if (!config.vpc.enabled) return '# egress.masquerade: off (no VPC: vpc.enabled is false)\n';
  const cidrs = config.egress.vpcCidrs;
  if (cidrs === undefined) return `# egress.masquerade: off (the VPC CIDR blocks are not known: ${config.egress.vpcCidrsUnknown ?? 'not read'})\n`;
  return `# egress.masquerade: decided at start: on unless the pod network in etcd lies inside the VPC CIDR(s) ${cidrs.join(', ')}\n`;
}
