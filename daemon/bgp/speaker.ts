// The BGP speaker of this host: a gobgpd that trellisd starts (or finds
// already running on bgp.apiListen, left by a previous trellisd) and drives
// over its gRPC API. No configuration file: the global settings and the
// peers are set through the API, peers are kept equal to bgp.peers.
//
// Graceful restart (docs/bgp.md): the instance offers bgp.restartTime to its
// peers. When trellisd stops it kills its gobgpd without a BGP NOTIFICATION
// (SIGKILL: the TCP connections close, no Cease is sent), so the peers keep
// our routes as stale for the restart time while the next trellisd and
// gobgpd come back; withdraw() instead stops the instance cleanly, and the
// peers drop our routes at once.
// Invariants: at most one gobgpd per apiListen; a gobgpd found running is
// reused, never killed unless it is ours; peers not in bgp.peers are removed.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { createHash } from 'node:crypto';
import { formatLargeCommunity, GobgpClient, type PeerSpec, type PeerStatus } from '../../src/bgp/gobgp-client.js';
import type { BgpPeer } from '../../src/config/bgp-config.js';
import { describeError, ErrorCode, TrellisError } from '../../src/errors.js';
import { peerTag, TAG_MARK } from './exporter.js';

export interface SpeakerOptions {
  readonly gobgpd: string;
  readonly apiListen: string;
  readonly asn: number;
  readonly routerId: string;
  readonly listenPort: number;
  /** Seconds. */
  readonly restartTime: number;
  readonly peers: readonly BgpPeer[];
  readonly log: Logger;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Speaker {
  readonly client: GobgpClient;
  private child: ChildProcess | undefined;

  constructor(private readonly options: SpeakerOptions) {
    this.client = new GobgpClient(options.apiListen);
  }

  /** gobgpd answering, BGP started with our AS, peers as configured. */
  async start(): Promise<void> {
    const { log } = this.options;
    if (!(await this.answers())) {
      this.spawn();
      for (let i = 0; !(await this.answers()); i++) {
        if (this.child?.exitCode !== null || i > 100) {
          throw new TrellisError(ErrorCode.Unavailable, `gobgpd (${this.options.gobgpd}) did not start answering on ${this.options.apiListen}`);
        }
        await sleep(100);
      }
    } else {
      log.info({ api: this.options.apiListen }, 'reusing the gobgpd already running');
    }
    const global = await this.client.getGlobal();
    if (global.asn === 0) {
      await this.client.startBgp({ asn: this.options.asn, routerId: this.options.routerId, listenPort: this.options.listenPort, restartTime: this.options.restartTime });
    } else if (global.asn !== this.options.asn || global.routerId !== this.options.routerId) {
      throw new TrellisError(ErrorCode.Config, `the gobgpd on ${this.options.apiListen} runs AS ${global.asn} router id ${global.routerId}, not AS ${this.options.asn} router id ${this.options.routerId}; stop it first`);
    }
    // The filter first: a path is never sent to a peer that is not in its tags.
    await this.installPeerFilter();
    await this.syncPeers();
  }

  /** The export filter of the peer tags (docs/bgp.md, "Per-peer plans"), named after the peer list. */
  private async installPeerFilter(): Promise<void> {
    const { asn, peers } = this.options;
    const tagged = peers.map((p, i) => ({ address: p.address, tag: peerTag(asn, i) }));
    const digest = createHash('sha256').update(tagged.map((p) => `${p.address}=${formatLargeCommunity(p.tag)}`).join(',')).digest('hex').slice(0, 12);
    await this.client.installPeerFilter(`trellis-peers-${digest}`, tagged, `^${asn}:${TAG_MARK}:[0-9]+$`);
  }

  private async answers(): Promise<boolean> {
    try {
      await this.client.getGlobal();
      return true;
    } catch {
      return false;
    }
  }

  private spawn(): void {
    const { gobgpd, apiListen, log } = this.options;
    const child = spawn(gobgpd, ['--api-hosts', apiListen, '--pprof-disable', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const speakerLog = log.child({ component: 'gobgpd' });
    const relay = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        try {
          const entry = JSON.parse(line) as { level?: string; msg?: string; [k: string]: unknown };
          const { level, msg, time: _time, ...rest } = entry;
          (level === 'warning' || level === 'error' ? speakerLog.warn.bind(speakerLog) : speakerLog.debug.bind(speakerLog))(rest, msg ?? '');
        } catch {
          speakerLog.info(line);
        }
      }
    };
    child.stdout?.on('data', relay);
    child.stderr?.on('data', relay);
    child.once('error', (err) => log.error({ err: describeError(err) }, 'cannot run gobgpd'));
    child.once('exit', (code, signal) => log.info({ code, signal }, 'gobgpd exited'));
    log.info({ pid: child.pid, api: apiListen }, 'gobgpd started');
  }

  /** Adds missing peers, removes unknown ones, re-adds a peer whose settings changed. */
  async syncPeers(): Promise<void> {
    const have = new Map((await this.client.listPeers()).map((p) => [p.address, p]));
    const want = new Map(this.options.peers.map((p) => [p.address, p]));
    for (const [address, status] of have) {
      const p = want.get(address);
      if (p === undefined || p.asn !== status.asn) await this.client.deletePeer(address);
    }
    const current = new Set((await this.client.listPeers()).map((p) => p.address));
    for (const p of this.options.peers) if (!current.has(p.address)) await this.client.addPeer(this.peerSpec(p));
  }

  private peerSpec(p: BgpPeer): PeerSpec {
    return { address: p.address, asn: p.asn, password: p.password, holdTime: p.holdTime, multihop: p.multihop, restartTime: this.options.restartTime, addPathSendMax: p.multipath };
  }

  peers(): Promise<PeerStatus[]> {
    return this.client.listPeers();
  }

  /** trellisd stops: kill our gobgpd without NOTIFICATION, so the peers keep our routes (graceful restart). */
  async stop(): Promise<void> {
    this.client.close();
    await this.killChild('SIGKILL');
  }

  /** Withdraw everything: stop BGP cleanly (the peers drop our routes), then the process. */
  async withdraw(): Promise<void> {
    await this.client.stopBgp().catch((err: unknown) => this.options.log.warn({ err: describeError(err) }, 'stopping BGP failed'));
    this.client.close();
    await this.killChild('SIGTERM');
  }

  private async killChild(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await Promise.race([exited, sleep(5000)]);
  }
}
