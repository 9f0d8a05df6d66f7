// Prometheus metrics of the BGP exporter, registered on trellisd's registry.
// Per-peer gauges are set after each status poll (labels: peer address);
// a peer that is not established reads 0 in trellis_bgp_peer_up.

import { Counter, Gauge, type Registry } from 'prom-client';

export class BgpMetrics {
  readonly peerUp: Gauge<'peer'>;
  readonly announced: Gauge<'peer'>;
  readonly budget: Gauge<'peer'>;
  readonly flaps: Gauge<'peer'>;
  readonly leader: Gauge;
  readonly passes: Counter<'result'>;
  readonly pathChanges: Counter<'action'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.peerUp = new Gauge({ name: 'trellis_bgp_peer_up', help: '1 while the BGP session with the peer is established, else 0.', labelNames: ['peer'], registers });
    this.announced = new Gauge({ name: 'trellis_bgp_announced_prefixes', help: 'Prefixes the speaker advertises to the peer now.', labelNames: ['peer'], registers });
    this.budget = new Gauge({ name: 'trellis_bgp_peer_max_prefixes', help: "The peer's prefix limit (bgp.peers maxPrefixes), shared by the whole cluster.", labelNames: ['peer'], registers });
    this.flaps = new Gauge({ name: 'trellis_bgp_peer_flaps', help: 'Times the session with the peer went down, as the speaker counts them.', labelNames: ['peer'], registers });
    this.leader = new Gauge({ name: 'trellis_bgp_exporter_leader', help: "1 while this node announces (exporter mode: elected exporter of its subnet; tor mode: always).", registers });
    this.passes = new Counter({ name: 'trellis_bgp_passes_total', help: 'BGP reconcile passes, by result (ok, error).', labelNames: ['result'], registers });
    this.pathChanges = new Counter({ name: 'trellis_bgp_path_changes_total', help: 'Paths added to or withdrawn from the speaker, by action (add, withdraw).', labelNames: ['action'], registers });
  }
}
