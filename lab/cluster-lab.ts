// A small routed network in network namespaces, shaped like a VPC, with etcd
// and one trellisd per host: the stage for multi-host tests and benchmarks.
//
//   router namespace: bridge br<i> per subnet i = 1..n, carrying 198.18.<i>.1/24
//                     (the router's interface on that subnet), IPv4 forwarding
//                     on, etcd listening on 198.18.1.1
//   host namespaces:  h<i>-<j> (j = 0..hostsPerSubnet-1): eth0 on br<i> with
//                     198.18.<i>.<10+j>/24, default route via 198.18.<i>.1,
//                     forwarding on (a host forwards for its pods)
//   pod namespaces:   eth0 with one /32, reached by the host through a veth with
//                     proxy ARP and a /32 route, as the CNI plugin wires them
//
// The topology stored in etcd has one zone per subnet (zone-<i>, subnet-<i>,
// host CIDR 198.18.<i>.0/24); the pod network defaults to 100.96.0.0/16 with
// /20 pod prefixes.
//
// Invariants:
// * Host addresses only from 198.18.0.0/15, pod addresses only from
//   100.64.0.0/10; nothing is created outside the lab's namespaces.
// * rp_filter is off in every lab namespace, whatever this machine's default,
//   and every bridge and every host's eth0 has a fixed MAC address
//   (lab/host-wiring.ts), so ARP entries stay valid while ports are added.
// * `destroy()` (also at the end of the test with `t`, or on failure and
//   interruption through the helpers' process-wide cleanups) stops the daemons,
//   then etcd, then deletes the namespaces; only PIDs and namespaces created
//   here are touched.

import { loadTopology } from '../src/core/topology-parse.js';
import type { Topology } from '../src/core/topology.js';
import { TopologySchema } from '../src/gen/trellis/v1/records_pb.js';
import { Keys } from '../src/state/keys.js';
import { encodeRecord } from '../src/state/records.js';
import { topologyToRecord } from '../src/state/topology-record.js';
import { onTeardown, type Teardown } from './cleanup.js';
import { startEtcd, type EtcdServer } from './etcd.js';
import { startEtcdCluster, type EtcdCluster } from './etcd-cluster.js';
import { Lab, isTestAddress, type Netns, type NsRef } from './netns.js';
import { CommandError } from './pids.js';
import { startBounded } from './progress.js';
import { bridgeMac, hostMac, ipBatch, relaxed, routerNeighbour, staticNeighbours } from './host-wiring.js';
import { Daemon, type DaemonOptions } from './trellis.js';

export interface ClusterLabOptions {
  /** Number of subnets (1..254); default 3. */
  subnets?: number;
  /** Hosts per subnet (1..200); default 3. */
  hostsPerSubnet?: number;
  /** trellisd hold time; default 3s. */
  holdTime?: string;
  /** Flags added to every trellisd. */
  extraDaemonArgs?: string[];
  /** Pod network of the topology; default 100.96.0.0/16 (inside 100.64.0.0/10). */
  network?: string;
  /** Length of the carved pod prefixes; default 20. */
  subnetSize?: number;
  /** Block length; default 26. */
  blockSize?: number;
  /** Extra etcd flags. */
  etcdArgs?: string[];
  /** etcd members (all in the router namespace on 198.18.1.1, distinct ports); default 1. */
  etcdMembers?: number;
  /** Makes each host's (not yet started) daemon; default `new Daemon(options)`. */
  makeDaemon?: (options: DaemonOptions) => Daemon;
  /**
   * Every host, and the router, knows the MAC address of each other host of its
   * subnet (and of its gateway) as a permanent neighbour entry, resolved once
   * when the lab is built. Each real host has a neighbour table of its own;
   * here every namespace shares the machine's one IPv4 table, whose garbage
   * collection starts dropping entries at gc_thresh3 (1,024) while permanent
   * entries do not count. 60 hosts in three subnets need 1,140 host pairs.
   * Default false: ARP as on a real network.
   */
  staticNeighbours?: boolean;
}

export interface LabHost {
  /** `h<i>-<j>`: also the trellisd node name. */
  readonly name: string;
  /** `subnet-<i>`. */
  readonly subnet: string;
  /** Position in `ClusterLab.hosts`. */
  readonly index: number;
  readonly ns: Netns;
  readonly hostIP: string;
  /** This host's trellisd (started by `startDaemons()`). */
  readonly daemon: Daemon;
}

export interface LabPod {
  readonly ns: Netns;
  readonly address: string;
  readonly host: LabHost;
  /** Host side of the pod's veth. */
  readonly hostIf: string;
}

/** A block record as stored in etcd (only the fields the lab reads). */
export interface LabBlock {
  readonly prefix: string;
  readonly node: string;
  readonly subnet: string;
  readonly [field: string]: unknown;
}

/** One entry of `ip -j route show`. */
export interface LabRoute {
  readonly dst: string;
  readonly gateway?: string;
  readonly dev?: string;
  readonly protocol?: string;
  readonly scope?: string;
  readonly type?: string;
  readonly flags?: string[];
  readonly [field: string]: unknown;
}

export interface PingResult {
  sent: number;
  received: number;
}

export const LAB_NETWORK = '100.96.0.0/16';
export const LAB_SUBNET_SIZE = 20;

/** The topology YAML of a lab with `subnets` subnets. */
export function clusterTopologyYaml(subnets: number, network = LAB_NETWORK, subnetSize = LAB_SUBNET_SIZE, blockSize = 26): string {
  const lines = [`network: ${network}`, `blockSize: ${blockSize}`, `subnetSize: ${subnetSize}`, 'zones:'];
  for (let i = 1; i <= subnets; i++) {
    lines.push(`  - name: zone-${i}`, '    subnets:', `      - id: subnet-${i}`, `        cidr: 198.18.${i}.0/24`);
  }
  return `${lines.join('\n')}\n`;
}

/** Builds a lab (see the file comment); with `t`, destroyed when the test ends. */
export async function buildClusterLab(t: Teardown | undefined, opts: ClusterLabOptions = {}): Promise<ClusterLab> {
  const subnets = opts.subnets ?? 3;
  const perSubnet = opts.hostsPerSubnet ?? 3;
  if (!Number.isInteger(subnets) || subnets < 1 || subnets > 254) throw new Error(`buildClusterLab: subnets ${subnets} (1..254)`);
  if (!Number.isInteger(perSubnet) || perSubnet < 1 || perSubnet > 200) {
    throw new Error(`buildClusterLab: hostsPerSubnet ${perSubnet} (1..200)`);
  }
  const yaml = clusterTopologyYaml(subnets, opts.network, opts.subnetSize, opts.blockSize);
  const topology = loadTopology(yaml, 'cluster lab topology');
  if (topology.network.family !== 4 || topology.network.len < 10 || !isTestAddress(formatFirst(topology.network.addr)) ||
    !formatFirst(topology.network.addr).startsWith('100.')) {
    throw new Error(`buildClusterLab: pod network ${opts.network} is not inside 100.64.0.0/10`);
  }

  const started = Date.now();
  const lab = new Lab();
  const cluster = new ClusterLab(lab, yaml, topology, opts);
  onTeardown(t, () => cluster.destroy());
  try {
    await cluster.build(subnets, perSubnet);
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  cluster.buildMs = Date.now() - started;
  return cluster;
}

function formatFirst(addr: bigint): string {
  const n = Number(addr);
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

function ipv4ToInt(address: string): number {
  const p = address.split('.').map(Number);
  return (((p[0] ?? 0) << 24) >>> 0) + ((p[1] ?? 0) << 16) + ((p[2] ?? 0) << 8) + (p[3] ?? 0);
}

export class ClusterLab {
  readonly lab: Lab;
  etcd!: EtcdServer;
  /** The etcd cluster when built with `etcdMembers` > 1 (`etcd` is then its first member). */
  etcdCluster: EtcdCluster | undefined;
  /** `user:password` the lab's own etcdctl calls use once authentication is on (lab/cluster-auth.ts). */
  etcdUser: string | undefined;
  router!: Netns;
  readonly hosts: LabHost[] = [];
  readonly pods: LabPod[] = [];
  /** Wall time of `buildClusterLab` (ms). */
  buildMs = 0;
  readonly keys = new Keys();
  private destroyed = false;
  private podSeq = 0;
  private etcdStarting: Promise<EtcdServer> | undefined;
  /** Namespaces still being made when a build step fails; destroy() waits for them. */
  private inFlight: Promise<unknown> | undefined;

  constructor(
    lab: Lab,
    /** The topology stored in etcd, as YAML. */
    readonly topologyYaml: string,
    readonly topology: Topology,
    private readonly opts: ClusterLabOptions,
  ) {
    this.lab = lab;
  }

  /** etcd client URL(s) every trellisd uses: http://198.18.1.1:PORT (comma separated for several members). */
  get endpoint(): string {
    return this.etcdCluster?.endpointList ?? this.etcd.endpoint;
  }

  /** @internal Creates namespaces, links, addresses, etcd and the topology. */
  async build(subnets: number, perSubnet: number): Promise<void> {
    const lab = this.lab;
    const subnetIds = Array.from({ length: subnets }, (_, k) => k + 1);
    const specs = subnetIds.flatMap((i) => Array.from({ length: perSubnet }, (_, j) => ({ i, j })));
    // etcd is the slowest part: router first, then etcd starting while the hosts are made.
    // Few processes (they dominate the build time): one script for the router,
    // one ip batch for every veth, one ip batch and one sysctl per host.
    this.router = await lab.ns('router');
    const hostsMade = Promise.all(specs.map(({ i, j }) => lab.ns(`h${i}-${j}`)));
    this.inFlight = hostsMade.catch(() => undefined);
    const routerScript = [`sysctl -qw ${relaxed().join(' ')}`];
    for (const i of subnetIds) {
      routerScript.push(
        `ip link add name br${i} address ${bridgeMac(i)} type bridge`,
        `ip addr add 198.18.${i}.1/24 dev br${i}`,
        `ip link set dev br${i} up`,
      );
    }
    await lab.exec(this.router, 'sh', ['-ec', routerScript.join('\n')]);
    const members = this.opts.etcdMembers ?? 1;
    this.etcdStarting =
      members > 1
        ? startEtcdCluster(undefined, { members, netns: this.router.name, host: '198.18.1.1', extraArgs: this.opts.etcdArgs ?? [] }).then((c) => {
            this.etcdCluster = c;
            return c.members[0] as EtcdServer;
          })
        : startEtcd(undefined, { netns: this.router.name, host: '198.18.1.1', extraArgs: this.opts.etcdArgs });
    // Handled here so that a failure below does not leave it unhandled; awaited below or by destroy().
    this.etcdStarting.catch(() => undefined);
    const hostNs = await hostsMade;

    // Router side of host i-j is v<i>-<j> on br<i>; the host side, moved into the host, is eth0.
    await ipBatch(
      this.router,
      specs.flatMap(({ i, j }, index) => [
        `link add v${i}-${j} type veth peer name eth0 netns ${hostNs[index]!.name}`,
        `link set dev v${i}-${j} master br${i} up`,
      ]),
    );
    await Promise.all(
      specs.flatMap(({ i, j }, index) => [
        lab.exec(hostNs[index]!, 'sysctl', ['-qw', ...relaxed('eth0')]),
        ipBatch(hostNs[index]!, [
          `link set dev eth0 address ${hostMac(i, j)} up`,
          `addr add 198.18.${i}.${10 + j}/24 dev eth0`,
          `route add default via 198.18.${i}.1 dev eth0`,
          ...(this.opts.staticNeighbours === true ? staticNeighbours(i, j, perSubnet) : []),
        ]),
      ]),
    );
    if (this.opts.staticNeighbours === true) {
      await ipBatch(this.router, specs.map(({ i, j }) => routerNeighbour(i, j)));
    }

    this.etcd = await this.etcdStarting;
    await this.etcd.etcdctl([
      'put',
      this.keys.topology(),
      encodeRecord(TopologySchema, topologyToRecord(this.topology, 1n, Date.now())),
    ]);

    const make = this.opts.makeDaemon ?? ((o: DaemonOptions) => new Daemon(o));
    for (const [index, { i, j }] of specs.entries()) {
      const name = `h${i}-${j}`;
      const hostIP = `198.18.${i}.${10 + j}`;
      const daemon = make({
        etcd: this.endpoint,
        nodeName: name,
        hostIP,
        iface: 'eth0',
        holdTime: this.opts.holdTime ?? '3s',
        netns: hostNs[index]!.name,
        args: [...(this.opts.extraDaemonArgs ?? [])],
      });
      this.hosts.push({ name, subnet: `subnet-${i}`, index, ns: hostNs[index]!, hostIP, daemon });
    }
  }

  /** The host named `name` (`h<i>-<j>`). */
  host(name: string): LabHost {
    const h = this.hosts.find((x) => x.name === name);
    if (h === undefined) throw new Error(`cluster lab: no host ${name}`);
    return h;
  }

  /**
   * Starts the daemons of `hosts` (default all), a bounded number at a time
   * (see progress.ts); resolves when each logged `untilLog` within `timeoutMs`
   * of its own spawn; the error names every host that did not.
   */
  async startDaemons(hosts: readonly LabHost[] = this.hosts, untilLog?: RegExp | string, timeoutMs?: number): Promise<void> {
    await startBounded(hosts.map((h) => ({ name: h.name, start: () => h.daemon.start(untilLog, timeoutMs) })), undefined, `"${String(untilLog ?? 'cluster view synced')}"`);
  }

  /** Runs etcdctl inside the router namespace (where etcd runs), against every running member. */
  etcdctl(args: readonly string[]): Promise<string> {
    const up = this.etcdCluster?.members.filter((m) => m.running);
    if (up === undefined || up.length === 0) return this.etcd.etcdctl([...this.etcdctlUser(), ...args]);
    return (up[0] as EtcdServer).etcdctl([`--endpoints=${up.map((m) => m.endpoint).join(',')}`, ...this.etcdctlUser(), ...args]);
  }

  /** etcdctl's --user flag once authentication is on; none before. */
  etcdctlUser(): string[] {
    return this.etcdUser === undefined ? [] : [`--user=${this.etcdUser}`];
  }

  /** Runs etcdctl inside a host namespace against the lab's etcd (across the router). */
  etcdctlFrom(host: LabHost, args: readonly string[]): Promise<string> {
    return this.lab.exec(host.ns, 'etcdctl', [`--endpoints=${this.endpoint}`, '--dial-timeout=2s', '--command-timeout=10s', ...this.etcdctlUser(), ...args], {
      env: { ETCDCTL_API: '3' },
    });
  }

  /** All records under `<prefix>` as { key, value } (values as text). */
  async getPrefix(prefix: string): Promise<Array<{ key: string; value: string }>> {
    const out = await this.etcdctl(['get', '--prefix', prefix, '-w', 'json']);
    const parsed = JSON.parse(out) as { kvs?: Array<{ key: string; value: string }> };
    return (parsed.kvs ?? []).map((kv) => ({
      key: Buffer.from(kv.key, 'base64').toString('utf8'),
      value: Buffer.from(kv.value, 'base64').toString('utf8'),
    }));
  }

  /** Block records in etcd owned by `host` (all blocks without one), lowest prefix first. */
  async blocksOf(host?: LabHost): Promise<LabBlock[]> {
    const blocks = (await this.getPrefix(this.keys.blocksPrefix())).map((kv) => JSON.parse(kv.value) as LabBlock);
    return blocks
      .filter((b) => host === undefined || b.node === host.name)
      .sort((a, b) => ipv4ToInt(a.prefix.split('/')[0]!) - ipv4ToInt(b.prefix.split('/')[0]!));
  }

  /** Node names registered in etcd. */
  async nodeNames(): Promise<string[]> {
    return (await this.getPrefix(this.keys.nodesPrefix())).map((kv) => Keys.leaf(kv.key)).sort();
  }

  /**
   * Adds a pod behind `host`: a namespace joined by a veth (`p<n>` on the host,
   * `eth0` in the pod) with `address/32` (default: the first address of the
   * host's blocks that no lab pod uses yet), `169.254.1.1` as its on-link
   * gateway and default route, and on the host proxy ARP on the veth and a /32
   * route to it with protocol 84, as the CNI plugin does.
   */
  async addPod(host: LabHost, address?: string): Promise<LabPod> {
    const addr = address ?? (await this.freePodAddress(host));
    if (!isTestAddress(addr) || !addr.startsWith('100.')) throw new Error(`addPod: ${addr} is not in 100.64.0.0/10`);
    const n = this.podSeq++;
    const hostIf = `p${n}`;
    const ns = await this.lab.ns(`${host.name}-pod${n}`);
    await this.lab.veth(host.ns, hostIf, ns, 'eth0');
    await Promise.all([
      this.lab.exec(ns, 'sh', [
        '-c',
        `ip addr add ${addr}/32 dev eth0 && ip route add 169.254.1.1 dev eth0 scope link && ip route add default via 169.254.1.1 dev eth0`,
      ]),
      this.lab.exec(host.ns, 'sh', [
        '-c',
        `sysctl -qw net.ipv4.conf.${hostIf}.proxy_arp=1 net.ipv4.neigh.${hostIf}.proxy_delay=0 net.ipv4.conf.${hostIf}.rp_filter=0 && ip route add ${addr}/32 dev ${hostIf} proto 84`,
      ]),
    ]);
    const pod: LabPod = { ns, address: addr, host, hostIf };
    this.pods.push(pod);
    return pod;
  }

  private async freePodAddress(host: LabHost): Promise<string> {
    const blocks = await this.blocksOf(host);
    if (blocks.length === 0) throw new Error(`addPod: ${host.name} holds no block (start its daemon first)`);
    const used = new Set(this.pods.map((p) => p.address));
    for (const b of blocks) {
      const [base, len] = b.prefix.split('/');
      const first = ipv4ToInt(base!);
      for (let k = 0; k < 2 ** (32 - Number(len)); k++) {
        const candidate = formatFirst(BigInt(first + k));
        if (!used.has(candidate)) return candidate;
      }
    }
    throw new Error(`addPod: no free address in the blocks of ${host.name}`);
  }

  /** Routes of `table` (default main) in `host`'s kernel, optionally only those of `protocol`. */
  async kernelRoutes(host: LabHost | NsRef, filter: { protocol?: number; table?: string | number } = {}): Promise<LabRoute[]> {
    const ns = typeof host === 'object' && 'daemon' in host ? host.ns : host;
    const args = ['-4', '-j', 'route', 'show', 'table', String(filter.table ?? 'main')];
    if (filter.protocol !== undefined) args.push('proto', String(filter.protocol));
    const out = await this.lab.exec(ns, 'ip', args);
    return out.trim() === '' ? [] : (JSON.parse(out) as LabRoute[]);
  }

  /** `count` echo requests from `from` to a test address, `intervalMs` apart. */
  async ping(from: LabHost | NsRef, address: string, o: { count?: number; intervalMs?: number } = {}): Promise<PingResult> {
    if (!isTestAddress(address)) throw new Error(`ping ${address}: not in 198.18.0.0/15 or 100.64.0.0/10`);
    const ns = typeof from === 'object' && 'daemon' in from ? from.ns : from;
    const count = o.count ?? 3;
    const intervalMs = o.intervalMs ?? 200;
    // -W bounds the wait for each reply; no -w, with which -c would count replies, not requests.
    const args = ['-n', '-q', '-c', String(count), '-i', String(intervalMs / 1000), '-W', '1', address];
    let out: string;
    try {
      out = await this.lab.exec(ns, 'ping', args, { timeoutMs: count * intervalMs + 10_000 });
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      out = err.stdout; // exit 1: some or all replies missing; the summary says how many
    }
    const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
    if (m === null) throw new Error(`ping ${address}: no summary in output:\n${out}`);
    return { sent: Number(m[1]), received: Number(m[2]) };
  }

  /** PIDs of the lab's running processes (etcd and daemons). */
  pids(): number[] {
    const pids = this.hosts.flatMap((h) => (h.daemon.running && h.daemon.pid !== undefined ? [h.daemon.pid] : []));
    if (this.etcdCluster !== undefined) pids.push(...this.etcdCluster.pids().filter((p) => p > 0));
    else if (this.etcd?.running) pids.push(this.etcd.pid);
    return pids;
  }

  /** Stops the daemons, then etcd, then deletes every namespace. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all(this.hosts.map((h) => h.daemon.destroy()));
    const etcd = await this.etcdStarting?.catch(() => undefined);
    await (this.etcdCluster ?? etcd)?.destroy();
    await this.inFlight;
    await this.lab.destroy();
  }
}
