// The cluster lab (cluster-lab.ts) with BGP: the lab's router namespace runs
// BIRD 2 as the independent upstream router (AS 65000, one dynamic BGP
// protocol per subnet accepting sessions from 198.18.<i>.0/24, routes learned
// exported to the router's kernel table), every trellisd runs with
// bgp.enabled (AS 65010) peering with its subnet's router address, and an
// "outside client" namespace hangs off the router (198.19.77.2/24 via
// 198.19.77.1), so that it reaches pods only through what BGP taught BIRD.
// More router peers (routerPeers) add, per host, a BIRD protocol on another
// address of its subnet's router interface (198.18.<i>.<octet>), with its
// own password, ADD-PATH receive, or neither; BIRD's kernel protocol merges equal
// paths into multipath kernel routes.
//
// Invariants: addresses only from 198.18.0.0/15 and 100.64.0.0/10; BIRD and
// the gobgpd processes trellisd started are stopped by PID on destroy (the
// latter found among the lab's host namespaces' processes).

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onTeardown, ownedTempDir, type Teardown } from './cleanup.js';
import { formatPrefix, parsePrefix } from '../src/core/cidr.js';
import { planBgpRoutes, type BgpPlanNode } from '../src/core/bgp-plan.js';
import { buildClusterLab, type ClusterLab, type ClusterLabOptions } from './cluster-lab.js';
import type { Netns } from './netns.js';
import { Daemon } from './trellis.js';

export const ROUTER_ASN = 65000;
export const CLUSTER_ASN = 65010;
export const CLIENT_ADDRESS = '198.19.77.2';

export interface BgpLabOptions extends ClusterLabOptions {
  /** maxPrefixes of every peer (default 100). */
  maxPrefixes?: number;
  /** bgp.mode (default exporter). */
  mode?: 'exporter' | 'tor';
  /** Peer options per subnet number, replacing the defaults (e.g. a wrong asn). */
  peerOverride?: (subnet: number) => string | undefined;
  /** BIRD's graceful restart time (s); default 120. */
  restartTime?: number;
  /** HTTP endpoints on the host IPs, so that exporters probe their forwarders (default loopback: leases alone decide). */
  probe?: boolean;
  /** BGP hold time of every session (s); default 6. */
  bgpHoldTime?: number;
  /** More BIRD protocols per host j of subnet i, named `<name><i>_<j>`, on 198.18.<i>.<octet>. */
  routerPeers?: readonly RouterPeer[];
  /** Every host's bgp.peers (subnet number → peer strings), replacing the default one peer. */
  peers?: (subnet: number) => string[];
}

export interface RouterPeer {
  readonly name: string;
  /** Last octet of the router's address on each subnet (2..9). */
  readonly octet: number;
  /** TCP-MD5 password BIRD requires. */
  readonly password?: string;
  /** BIRD takes several paths per prefix (ADD-PATH receive). */
  readonly addPaths?: boolean;
}

export interface BirdRoute {
  readonly prefix: string;
  readonly nextHops: string[];
}

export class BgpLab {
  bird: ChildProcess | undefined;
  /** The BIRD of each router peer, by name. */
  readonly extraBirds = new Map<string, ChildProcess>();
  client!: Netns;
  readonly dir = ownedTempDir('bird');
  private destroyed = false;

  constructor(readonly cluster: ClusterLab, readonly options: BgpLabOptions) {}

  get socket(): string {
    return join(this.dir, 'bird.ctl');
  }

  /** @internal BIRD config, BIRD, the outside client. */
  async build(subnets: number): Promise<void> {
    const { cluster } = this;
    const hold = this.options.bgpHoldTime ?? 6;
    const conf = [
      'router id 198.18.1.1;',
      'log stderr all;',
      `log "${join(this.dir, 'bird.log')}" all;`,
      'protocol device { scan time 10; }',
      'protocol direct { ipv4; interface "cl*"; }',
      'protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }',
      ...Array.from({ length: subnets }, (_, k) => k + 1).map(
        (i) =>
          `protocol bgp subnet${i} { local 198.18.${i}.1 as ${ROUTER_ASN}; neighbor range 198.18.${i}.0/24 external; strict bind on; dynamic name "subnet${i}_"; ` +
          `hold time ${hold}; connect retry time 1; graceful restart on; graceful restart time ${this.options.restartTime ?? 120}; ` +
          `ipv4 { import all; export none; }; }`,
      ),
    ].join('\n');
    writeFileSync(join(this.dir, 'bird.conf'), `${conf}\n`);
    // Each router peer is a BIRD of its own: one BIRD runs one session per
    // neighbor address (it locks the neighbor), so a host could not peer with
    // two protocols of the same BIRD. Every BIRD binds its own addresses
    // (strict bind), so that they share port 179. Their kernel routes go to a table of
    // their own (100 + octet), never to the main one the lab forwards with.
    for (const r of this.options.routerPeers ?? []) {
      const extra = [
        `router id 198.18.1.${r.octet};`,
        'log stderr all;',
        'protocol device { scan time 10; }',
        `protocol kernel { kernel table ${100 + r.octet}; ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }`,
        ...Array.from({ length: subnets }, (_, k) => k + 1).map(
          (i) =>
            `protocol bgp ${r.name}${i} { local 198.18.${i}.${r.octet} as ${ROUTER_ASN}; neighbor range 198.18.${i}.0/24 external; strict bind on; dynamic name "${r.name}${i}_"; ` +
            `hold time ${hold}; connect retry time 1; graceful restart on; graceful restart time ${this.options.restartTime ?? 120}; ` +
            `${r.password === undefined ? '' : `password "${r.password}"; `}ipv4 { import all; export none;${r.addPaths === true ? ' add paths rx;' : ''} }; }`,
        ),
      ].join('\n');
      writeFileSync(join(this.dir, `bird-${r.name}.conf`), `${extra}\n`);
    }
    this.client = await cluster.lab.ns('client');
    await cluster.lab.veth(cluster.router, 'cl0', this.client, 'eth0');
    await cluster.lab.exec(cluster.router, 'sh', ['-ec', 'ip addr add 198.19.77.1/24 dev cl0 && ip link set cl0 up']);
    for (let i = 1; i <= subnets; i++) {
      for (const r of this.options.routerPeers ?? []) await cluster.lab.exec(cluster.router, 'ip', ['addr', 'add', `198.18.${i}.${r.octet}/24`, 'dev', `br${i}`]);
    }
    await cluster.lab.exec(this.client, 'sh', ['-ec', `ip addr add ${CLIENT_ADDRESS}/24 dev eth0 && ip link set eth0 up && ip route add default via 198.19.77.1`]);
    await this.startBird();
    for (const r of this.options.routerPeers ?? []) this.extraBirds.set(r.name, await this.spawnBird(r.name));
  }

  async startBird(): Promise<void> {
    this.bird = await this.spawnBird(undefined);
  }

  private async spawnBird(name: string | undefined): Promise<ChildProcess> {
    const conf = join(this.dir, name === undefined ? 'bird.conf' : `bird-${name}.conf`);
    const bird = spawn('ip', ['netns', 'exec', this.cluster.router.name, 'bird', '-f', '-c', conf, '-s', this.socketOf(name)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    bird.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    for (let i = 0; i < 100; i++) {
      if (bird.exitCode !== null) throw new Error(`bird exited: ${err}`);
      try {
        await this.birdc(['show', 'status'], name);
        return bird;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    bird.kill('SIGKILL');
    throw new Error(`bird did not answer on ${this.socketOf(name)}`);
  }

  private socketOf(name: string | undefined): string {
    return name === undefined ? this.socket : join(this.dir, `bird-${name}.ctl`);
  }

  /** birdc against the main BIRD, or the one of router peer `name`. */
  birdc(args: readonly string[], name?: string): Promise<string> {
    return this.cluster.lab.exec(this.cluster.router, 'birdc', ['-s', this.socketOf(name), ...args]);
  }

  /** BIRD's BGP routes (primary and others), by prefix: the main BIRD's, or those of router peer `name`. */
  async routes(name?: string): Promise<BirdRoute[]> {
    return parseBirdRoutes(await this.birdc(['show', 'route', 'where', 'source', '=', 'RTS_BGP'], name));
  }

  /** States of the sessions of router peer `name` (every subnet, every host). */
  async sessions(name: string): Promise<string[]> {
    const out = await this.birdc(['show', 'protocols'], name);
    return out.split('\n').filter((l) => /\sBGP\s/.test(l)).map((l) => l.trim().split(/\s+/).slice(-1)[0] as string);
  }

  /** Established sessions of router peer `name`. */
  async establishedOf(name: string): Promise<number> {
    return (await this.sessions(name)).filter((s) => s === 'Established').length;
  }

  /** The kernel route of `prefix` that router peer `name`'s BIRD installed (its table 100 + octet): its next hops. */
  async kernelNextHops(name: string, prefix: string): Promise<string[]> {
    const r = (this.options.routerPeers ?? []).find((x) => x.name === name);
    if (r === undefined) throw new Error(`no router peer ${name}`);
    const out = await this.cluster.lab.exec(this.cluster.router, 'ip', ['route', 'show', 'table', String(100 + r.octet), prefix]);
    return [...out.matchAll(/via (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1] as string).sort();
  }

  /** The host of `subnet` that announces now (GET /bgp), if any. */
  async exporterOf(subnet: string): Promise<string | undefined> {
    for (const h of this.cluster.hosts.filter((x) => x.subnet === subnet && x.daemon.running)) {
      const r = await this.http(h, '/bgp').catch(() => undefined);
      if (r?.status === 200 && (JSON.parse(r.body) as { announcing: boolean }).announcing) return h.name;
    }
    return undefined;
  }

  /** Established BGP sessions BIRD has. */
  async establishedSessions(): Promise<number> {
    const out = await this.birdc(['show', 'protocols']);
    return out.split('\n').filter((l) => /\sBGP\s.*Established/.test(l)).length;
  }

  async stopBird(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const bird = this.bird;
    if (bird === undefined || bird.exitCode !== null || bird.signalCode !== null) return;
    const done = new Promise((r) => bird.once('exit', r));
    bird.kill(signal);
    await done;
  }

  /** `GET path` of a host's trellisd HTTP endpoint (127.0.0.1:9653 in its namespace, or its host IP with `probe`). */
  async http(host: { ns: Netns; hostIP: string }, path: string): Promise<{ status: number; body: string }> {
    const where = this.options.probe === true ? host.hostIP : '127.0.0.1';
    const out = await this.cluster.lab.exec(host.ns, 'curl', ['-s', '-m', '5', '-w', '\n%{http_code}', `http://${where}:9653${path}`]);
    const at = out.lastIndexOf('\n');
    return { status: Number(out.slice(at + 1)), body: out.slice(0, at) };
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all(this.cluster.hosts.map((h) => h.daemon.stop().catch(() => undefined)));
    // gobgpd processes left by a trellisd that did not stop cleanly.
    for (const h of this.cluster.hosts) {
      const pids = await this.cluster.lab.exec(h.ns, 'sh', ['-c', 'ip netns pids "$0" || true', h.ns.name]).catch(() => '');
      for (const pid of pids.split('\n').filter((p) => /^\d+$/.test(p))) {
        let comm = '';
        try {
          comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        } catch {
          continue;
        }
        if (comm === 'gobgpd') process.kill(Number(pid), 'SIGKILL');
      }
    }
    await this.stopBird();
    for (const bird of this.extraBirds.values()) {
      if (bird.exitCode !== null || bird.signalCode !== null) continue;
      const done = new Promise((r) => bird.once('exit', r));
      bird.kill('SIGTERM');
      await done;
    }
    await this.cluster.destroy();
  }
}

/** The flags that turn BGP on for a host of subnet `i`. */
/**
 * What a peer with `maxPrefixes` (and `multipath` next hops) should hold:
 * src/core/bgp-plan.ts over the blocks in etcd, every host healthy, sorted
 * by prefix, next hops sorted; only `subnets`' routes when given.
 */
export async function plannedRoutes(lab: BgpLab, maxPrefixes: number, o: { multipath?: number; subnets?: readonly string[] } = {}): Promise<BirdRoute[]> {
  const blocks = await lab.cluster.blocksOf();
  const nodes: BgpPlanNode[] = lab.cluster.hosts.map((h) => ({
    name: h.name,
    subnet: h.subnet,
    hostIP: h.hostIP,
    blocks: blocks.filter((b) => b.node === h.name).map((b) => parsePrefix(b.prefix)),
    healthy: true,
  }));
  const plan = planBgpRoutes({ topology: lab.cluster.topology, nodes, maxPrefixes, ...(o.multipath === undefined ? {} : { multipath: o.multipath }) });
  return plan.routes
    .filter((r) => o.subnets === undefined || o.subnets.includes(r.subnet))
    .map((r) => ({ prefix: formatPrefix(r.prefix), nextHops: [...r.nextHops].sort() }))
    .sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
}

export function bgpDaemonArgs(i: number, options: BgpLabOptions): string[] {
  const peer = options.peerOverride?.(i) ?? `198.18.${i}.1 asn=${ROUTER_ASN} maxPrefixes=${options.maxPrefixes ?? 100} holdTime=${options.bgpHoldTime ?? 6}s`;
  const peers = options.peers?.(i).join(',') ?? peer;
  return ['--bgp-enabled', '--bgp-asn', String(CLUSTER_ASN), '--bgp-mode', options.mode ?? 'exporter', '--bgp-peers', peers, '--bgp-restart-time', `${options.restartTime ?? 120}s`];
}

/** A cluster lab whose daemons speak BGP to BIRD in the router namespace (not started). */
export async function buildBgpLab(t: Teardown | undefined, options: BgpLabOptions = {}): Promise<BgpLab> {
  const subnets = options.subnets ?? 3;
  const cluster = await buildClusterLab(undefined, {
    ...options,
    makeDaemon: (o) => {
      const i = Number(o.hostIP.split('.')[2]);
      const http = options.probe === true ? ['--http-listen', `${o.hostIP}:9653`] : [];
      return new Daemon({ ...o, args: [...(o.args ?? []), ...http, ...bgpDaemonArgs(i, options)] });
    },
  });
  const lab = new BgpLab(cluster, options);
  onTeardown(t, () => lab.destroy());
  try {
    await lab.build(subnets);
  } catch (err) {
    await lab.destroy();
    throw err;
  }
  return lab;
}

/** `birdc show route` output → routes by prefix, with every next hop seen. */
function parseBirdRoutes(out: string): BirdRoute[] {
  const routes = new Map<string, Set<string>>();
  let current: string | undefined;
  for (const line of out.split('\n')) {
    const head = /^(\d+\.\d+\.\d+\.\d+\/\d+)\s/.exec(line);
    if (head !== null) current = head[1];
    const via = /via (\d+\.\d+\.\d+\.\d+)/.exec(line);
    if (current !== undefined && via !== null) routes.set(current, (routes.get(current) ?? new Set()).add(via[1] as string));
    else if (current !== undefined && !routes.has(current)) routes.set(current, new Set());
  }
  return [...routes].map(([prefix, hops]) => ({ prefix, nextHops: [...hops].sort() })).sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
}
