// Health of the forwarders of one subnet, as its VPC advertiser judges it.
//
// A candidate forwarder is a live node of the subnet (its node record exists,
// i.e. its lease is alive) with an instance id. While probing, the advertiser
// opens a TCP connection to each candidate's health endpoint (the
// `healthEndpoint` of its node record: trellisd's HTTP port on its host IP)
// every probe interval.
//  * A healthy forwarder fails after `misses` consecutive failed probes.
//  * A failed forwarder is healthy again only after it has answered every
//    probe for `recoverAfter` (hysteresis: a flapping host never gets entries
//    back and loses them again at every flap).
//  * A node never seen failed is healthy from its first answered probe; a
//    node whose record vanished is failed, and keeps its history, so coming
//    back goes through the recovery time like any failed node.
//  * A node without a health endpoint (trellisd listens on loopback only)
//    cannot be probed: its lease alone decides.
// `change` is emitted whenever a forwarder's verdict flips.

import { EventEmitter } from 'node:events';
import { connect } from 'node:net';
import type { Logger } from 'pino';
import type { ForwarderVerdict } from '../../src/state/vpc-status.js';
import { parseListen } from '../../src/core/endpoints.js';

export interface Candidate {
  readonly name: string;
  readonly instanceId: string;
  /** host:port, or "" when the node cannot be probed. */
  readonly endpoint: string;
}

export interface HealthOptions {
  readonly intervalMs: number;
  readonly misses: number;
  readonly recoverAfterMs: number;
  readonly log: Logger;
  readonly now?: () => number;
  /** One probe; resolves true when the endpoint accepts a connection (default: TCP connect). */
  readonly probe?: (endpoint: string, timeoutMs: number) => Promise<boolean>;
}

interface Track {
  candidate: Candidate | undefined;
  /** undefined until the first probe of a node never seen failed. */
  healthy: boolean | undefined;
  misses: number;
  /** Start of the current run of answered probes of a failed node. */
  okSince: number | undefined;
  changedAt: number;
  everFailed: boolean;
}

/** How long the history of a node that left is kept. */
const FORGET_AFTER_MS = 3_600_000;

/** TCP connect to host:port within `timeoutMs`. */
export function tcpProbe(endpoint: string, timeoutMs: number): Promise<boolean> {
  const where = parseListen(endpoint);
  if (where === undefined) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = connect({ host: where.host, port: where.port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export class ForwarderHealth extends EventEmitter<{ change: [node: string, healthy: boolean] }> {
  private readonly tracks = new Map<string, Track>();
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly probe: (endpoint: string, timeoutMs: number) => Promise<boolean>;

  constructor(private readonly options: HealthOptions) {
    super();
    this.now = options.now ?? Date.now;
    this.probe = options.probe ?? tcpProbe;
  }

  /** The live candidates of the subnet; nodes missing from the list are failed. */
  setCandidates(list: readonly Candidate[]): void {
    const names = new Set(list.map((c) => c.name));
    for (const c of list) {
      const t = this.tracks.get(c.name);
      if (t === undefined) this.tracks.set(c.name, { candidate: c, healthy: c.endpoint === '' ? true : undefined, misses: 0, okSince: undefined, changedAt: 0, everFailed: false });
      else {
        t.candidate = c;
        if (c.endpoint === '' && t.healthy !== true) this.flip(c.name, t, true);
      }
    }
    for (const [name, t] of this.tracks) {
      if (t.candidate === undefined && this.now() - t.changedAt > FORGET_AFTER_MS) this.tracks.delete(name);
      if (names.has(name) || t.candidate === undefined) continue;
      t.candidate = undefined;
      if (t.healthy !== false) this.flip(name, t, false);
    }
  }

  /** Seeds a failed verdict (from the previous leader's status) so recovery keeps its hysteresis. */
  seedFailed(name: string, changedAt: number): void {
    const t = this.tracks.get(name) ?? { candidate: undefined, healthy: undefined, misses: 0, okSince: undefined, changedAt: 0, everFailed: false };
    t.healthy = false;
    t.everFailed = true;
    t.changedAt = changedAt;
    this.tracks.set(name, t);
  }

  /** Healthy now: a live candidate whose last verdict is good (never probed yet: not healthy). */
  healthy(name: string): boolean {
    const t = this.tracks.get(name);
    return t?.candidate !== undefined && t.healthy === true;
  }

  /** True when some live candidate has not been judged yet (probe before planning). */
  hasUnjudged(): boolean {
    return [...this.tracks.values()].some((t) => t.candidate !== undefined && t.healthy === undefined);
  }

  verdicts(): ForwarderVerdict[] {
    return [...this.tracks.entries()]
      .filter(([, t]) => t.candidate !== undefined || t.healthy === false)
      .map(([node, t]) => ({ node, instanceId: t.candidate?.instanceId ?? '', healthy: this.healthy(node), consecutiveMisses: t.misses, changedAt: t.changedAt }))
      .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  /** Probe every candidate with an endpoint once; resolves when all answered or timed out. */
  probeAll(): Promise<void> {
    this.round ??= this.doRound().finally(() => {
      this.round = undefined;
    });
    return this.round;
  }

  private async doRound(): Promise<void> {
    const timeoutMs = Math.max(50, Math.min(2000, Math.floor(this.options.intervalMs * 0.8)));
    const probes = [...this.tracks.entries()].filter(([, t]) => t.candidate !== undefined && t.candidate.endpoint !== '');
    const results = await Promise.all(probes.map(([, t]) => this.probe((t.candidate as Candidate).endpoint, timeoutMs).catch(() => false)));
    probes.forEach(([name, t], i) => this.record(name, t, results[i] === true));
  }

  private record(name: string, t: Track, ok: boolean): void {
    if (t.candidate === undefined) return; // vanished while probing
    if (!ok) {
      t.misses++;
      t.okSince = undefined;
      if (t.healthy !== false && t.misses >= this.options.misses) this.flip(name, t, false);
      return;
    }
    t.misses = 0;
    if (t.healthy === true) return;
    if (t.healthy === undefined && !t.everFailed) {
      this.flip(name, t, true);
      return;
    }
    const now = this.now();
    t.okSince ??= now;
    if (now - t.okSince >= this.options.recoverAfterMs) this.flip(name, t, true);
  }

  private flip(name: string, t: Track, healthy: boolean): void {
    const was = t.healthy;
    t.healthy = healthy;
    t.changedAt = this.now();
    if (!healthy) {
      t.everFailed = true;
      t.okSince = undefined;
    }
    if (was === healthy) return;
    this.options.log.info({ node: name, healthy, misses: t.misses }, healthy ? 'forwarder healthy' : 'forwarder failed');
    this.emit('change', name, healthy);
  }

  /** Probe every interval until stop(). */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.probeAll(), this.options.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
