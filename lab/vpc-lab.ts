// A cluster lab in VPC mode, for the advertiser tests and bench/failover:
//   * the cluster lab (subnets of host namespaces behind a router, etcd in
//     the router) with its topology naming one route table per subnet;
//   * moto_server in the router namespace on 198.18.1.1, holding a VPC
//     198.18.0.0/16, one EC2 subnet, route table and instance per lab subnet
//     and host (the instance's private IP is the host IP), and in every
//     table 0.0.0.0/0 to an internet gateway and 198.19.0.0/16 to a NAT
//     gateway (with the local route: three routes Trellis does not own);
//   * the counting EC2 proxy (ec2-proxy.ts) in this process, in front of moto,
//     reachable from the lab at 198.18.1.1:<port>: every trellisd's EC2
//     endpoint, so every call the daemons make is counted.
// trellisd runs with --vpc-enabled true, its instance id, the region, the VPC
// id, --http-listen 0.0.0.0:9653 (the advertiser probes it) and the instance
// metadata endpoint pointed at moto (never at 169.254.169.254); fake AWS
// credentials come from the environment.

import { AllocateAddressCommand, AssociateRouteTableCommand, AttachInternetGatewayCommand, CreateInternetGatewayCommand, CreateNatGatewayCommand, CreateRouteCommand, CreateRouteTableCommand, CreateSubnetCommand, CreateVpcCommand, DescribeRouteTablesCommand, EC2Client, RunInstancesCommand, type Route } from '@aws-sdk/client-ec2';
import { rmSync } from 'node:fs';
import { loadTopology } from '../src/core/topology-parse.js';
import { TopologySchema } from '../src/gen/trellis/v1/records_pb.js';
import { encodeRecord } from '../src/state/records.js';
import { topologyToRecord } from '../src/state/topology-record.js';
import { onTeardown, ownedTempDir, registerCleanup, type Teardown } from './cleanup.js';
import { buildClusterLab, LAB_NETWORK, LAB_SUBNET_SIZE, type ClusterLab, type ClusterLabOptions, type LabHost } from './cluster-lab.js';
import { startEc2Proxy, type Ec2Proxy } from './ec2-proxy.js';
import { startMoto, type MotoServer } from './moto.js';
import { fromNamespace, type NsForward } from './ns-forward.js';
export { until } from './pids.js';
import { freePort } from './ports.js';
import { startBounded } from './progress.js';
import { Daemon } from './trellis.js';

export const NAT_DESTINATION = '198.19.0.0/16';
export const AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

export interface VpcLabOptions {
  subnets?: number;
  hostsPerSubnet?: number;
  /** Add 0.0.0.0/0 to an internet gateway and a NAT-gateway route to every table (default true). */
  gatewayRoutes?: boolean;
  /** etcd members (see ClusterLabOptions.etcdMembers); default 1. */
  etcdMembers?: number;
  /** Hold time, daemon flags and daemon factory of the cluster lab (its hosts' own daemons; see `vpcArgs`). */
  cluster?: Pick<ClusterLabOptions, 'holdTime' | 'extraDaemonArgs' | 'makeDaemon' | 'staticNeighbours'>;
}

/** A route of a table, reduced for comparisons. */
export interface TableRoute {
  readonly destination: string;
  readonly target: string;
  readonly instance: boolean;
}

export class VpcLab {
  readonly instances = new Map<string, string>();
  /** Primary network interface id → instance id (trellisd routes to the interface). */
  readonly interfaces = new Map<string, string>();
  /** Lab subnet id → route table id. */
  readonly tables = new Map<string, string>();
  readonly daemons = new Map<string, Daemon>();
  vpcId = '';
  /** The routes Trellis does not own, per table, as created. */
  readonly foreign = new Map<string, TableRoute[]>();
  private readonly stateDirs = new Map<string, string>();
  /** Removes every state directory now; registered so that a signal (Ctrl-C in the demo) removes them too. */
  private readonly removeStateDirs = (): void => {
    for (const dir of this.stateDirs.values()) rmSync(dir, { recursive: true, force: true });
  };
  private unregisterStateDirs: (() => void) | undefined;
  /** The proxy's forward into the router namespace. */
  forward: NsForward | undefined;

  constructor(
    readonly lab: ClusterLab,
    readonly moto: MotoServer,
    readonly proxy: Ec2Proxy,
    /** EC2 endpoint of the daemons (the proxy, seen from the lab). */
    readonly ec2Endpoint: string,
    /** Straight to moto, for the test's own reads (not counted). */
    readonly ec2: EC2Client,
  ) {}

  get hosts(): LabHost[] {
    return this.lab.hosts;
  }

  hostsOf(subnet: string): LabHost[] {
    return this.lab.hosts.filter((h) => h.subnet === subnet);
  }

  /** @internal */
  async provision(gatewayRoutes = true): Promise<void> {
    const ec2 = this.ec2;
    const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: '198.18.0.0/16' }))).Vpc;
    this.vpcId = vpc?.VpcId as string;
    const igw = (await ec2.send(new CreateInternetGatewayCommand({}))).InternetGateway?.InternetGatewayId as string;
    await ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: igw, VpcId: this.vpcId }));
    const subnetIds = [...new Set(this.lab.hosts.map((h) => h.subnet))];
    let natSubnet = '';
    for (const [k, subnet] of subnetIds.entries()) {
      const i = k + 1;
      const ec2Subnet = (await ec2.send(new CreateSubnetCommand({ VpcId: this.vpcId, CidrBlock: `198.18.${i}.0/24` }))).Subnet?.SubnetId as string;
      natSubnet ||= ec2Subnet;
      const rtb = (await ec2.send(new CreateRouteTableCommand({ VpcId: this.vpcId }))).RouteTable?.RouteTableId as string;
      await ec2.send(new AssociateRouteTableCommand({ RouteTableId: rtb, SubnetId: ec2Subnet }));
      this.tables.set(subnet, rtb);
      for (const h of this.hostsOf(subnet)) {
        const run = await ec2.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 1, MaxCount: 1, SubnetId: ec2Subnet, PrivateIpAddress: h.hostIP }));
        const inst = run.Instances?.[0];
        this.instances.set(h.name, inst?.InstanceId as string);
        const eni = inst?.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0)?.NetworkInterfaceId;
        if (eni !== undefined) this.interfaces.set(eni, inst?.InstanceId as string);
      }
    }
    const eip = await ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }));
    const nat = (await ec2.send(new CreateNatGatewayCommand({ SubnetId: natSubnet, AllocationId: eip.AllocationId }))).NatGateway?.NatGatewayId as string;
    for (const rtb of gatewayRoutes ? this.tables.values() : []) {
      await ec2.send(new CreateRouteCommand({ RouteTableId: rtb, DestinationCidrBlock: '0.0.0.0/0', GatewayId: igw }));
      await ec2.send(new CreateRouteCommand({ RouteTableId: rtb, DestinationCidrBlock: NAT_DESTINATION, NatGatewayId: nat }));
    }
    for (const [rtb, routes] of await this.routes()) this.foreign.set(rtb, routes.filter((r) => !r.instance));
    // The topology the daemons follow: the lab's, with each subnet's route table.
    const lines = [`network: ${LAB_NETWORK}`, 'blockSize: 26', `subnetSize: ${LAB_SUBNET_SIZE}`, 'zones:'];
    subnetIds.forEach((s, k) => lines.push(`  - name: zone-${k + 1}`, '    subnets:', `      - id: ${s}`, `        cidr: 198.18.${k + 1}.0/24`, `        routeTable: ${this.tables.get(s)}`));
    const topology = loadTopology(`${lines.join('\n')}\n`, 'vpc lab topology');
    await this.lab.etcdctl(['put', this.lab.keys.topology(), encodeRecord(TopologySchema, topologyToRecord(topology, 2n, Date.now()))]);
  }

  /** Every route of every lab table, by table id (read straight from moto); a route to a lab instance's primary interface is a route to the instance. */
  async routes(): Promise<Map<string, TableRoute[]>> {
    const out = await this.ec2.send(new DescribeRouteTablesCommand({ RouteTableIds: [...this.tables.values()] }));
    const map = new Map<string, TableRoute[]>();
    for (const rt of out.RouteTables ?? []) {
      const list = (rt.Routes ?? []).map((r: Route) => {
        const instance = r.InstanceId ?? (r.NetworkInterfaceId === undefined ? undefined : this.interfaces.get(r.NetworkInterfaceId));
        return { destination: r.DestinationCidrBlock ?? '', target: instance ?? r.GatewayId ?? r.NatGatewayId ?? r.NetworkInterfaceId ?? '', instance: instance !== undefined };
      });
      map.set(rt.RouteTableId as string, list.sort((a, b) => (a.destination < b.destination ? -1 : a.destination > b.destination ? 1 : 0)));
    }
    return map;
  }

  /** Instance-target entries per table (Trellis's). */
  async entries(): Promise<Map<string, TableRoute[]>> {
    const all = await this.routes();
    return new Map([...all].map(([k, v]) => [k, v.filter((r) => r.instance)]));
  }

  /** Host name of an instance id. */
  hostOfInstance(instanceId: string): LabHost | undefined {
    const name = [...this.instances].find(([, id]) => id === instanceId)?.[0];
    return name === undefined ? undefined : this.lab.host(name);
  }

  /** The flags that put `host`'s trellisd in VPC mode against this lab's EC2 (it also needs AWS_ENV). */
  vpcArgs(host: LabHost, instanceId?: string): string[] {
    return [
      '--instance-id', instanceId ?? (this.instances.get(host.name) as string),
      '--vpc-enabled', 'true',
      '--vpc-endpoint', this.ec2Endpoint,
      '--vpc-region', 'us-east-1',
      '--vpc-vpc-id', this.vpcId,
      '--vpc-metadata-endpoint', this.moto.endpoint,
      '--http-listen', '0.0.0.0:9653',
    ];
  }

  /**
   * A new (not started) trellisd for `host`; its state directory (one per
   * node name) is kept across phases so leases re-attach. `as` runs another
   * node name, host IP or instance id in the host's namespace.
   */
  daemon(host: LabHost, args: readonly string[], as: { nodeName?: string; hostIP?: string; instanceId?: string } = {}): Daemon {
    const nodeName = as.nodeName ?? host.name;
    let dir = this.stateDirs.get(nodeName);
    if (dir === undefined) {
      dir = ownedTempDir('trellisd');
      this.stateDirs.set(nodeName, dir);
      this.unregisterStateDirs ??= registerCleanup(this.removeStateDirs);
    }
    const d = new Daemon({
      etcd: this.lab.endpoint,
      nodeName,
      hostIP: as.hostIP ?? host.hostIP,
      iface: 'eth0',
      holdTime: '3s',
      netns: host.ns.name,
      stateDir: dir,
      env: AWS_ENV,
      args: [...this.vpcArgs(host, as.instanceId), ...args],
    });
    this.daemons.set(nodeName, d);
    return d;
  }

  /**
   * Starts daemons for `hosts` with `args`, `parallel` at a time (see
   * progress.ts); resolves when each has synced its view, each within
   * `perHostMs` (default 30 s) of its own spawn; the error names every host
   * that did not.
   */
  async start(hosts: readonly LabHost[], args: readonly string[], parallel?: number, perHostMs = 30_000): Promise<void> {
    await startBounded(hosts.map((h) => ({ name: h.name, start: () => this.daemon(h, args).start('cluster view synced', perHostMs) })), parallel, 'synced (cluster view)');
  }

  /** Graceful stop of every running daemon. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.daemons.values()].map((d) => d.stop()));
  }

  /** The leader named in a subnet's status record ("" when none yet). */
  async statusOf(subnet: string): Promise<Record<string, unknown> | undefined> {
    const kvs = await this.lab.getPrefix(this.lab.keys.vpcStatus(subnet));
    const kv = kvs.find((k) => k.key === this.lab.keys.vpcStatus(subnet));
    return kv === undefined ? undefined : (JSON.parse(kv.value) as Record<string, unknown>);
  }

  /** Prometheus text of a host's trellisd. */
  metrics(host: LabHost): Promise<string> {
    return this.lab.lab.exec(host.ns, 'curl', ['-s', '--max-time', '5', 'http://127.0.0.1:9653/metrics']);
  }

  /** Sum of a metric's samples (matching `labels`, e.g. 'result="throttled"') over `hosts`. */
  async metricSum(hosts: readonly LabHost[], name: string, labels = ''): Promise<number> {
    let sum = 0;
    for (const h of hosts) {
      const text = await this.metrics(h);
      for (const line of text.split('\n')) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (labels !== '' && !line.includes(labels)) continue;
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
    return sum;
  }

  /** Stops the daemons, the proxy and moto, and destroys the lab. Idempotent. */
  async destroy(): Promise<void> {
    await Promise.all([...this.daemons.values()].map((d) => d.destroy()));
    this.removeStateDirs();
    this.unregisterStateDirs?.();
    this.ec2.destroy();
    await this.forward?.close();
    await this.proxy.close();
    await this.moto.stop();
    await this.lab.destroy();
  }
}

/** Builds the VPC lab (see the module comment); with `t`, destroyed when the test ends. */
export async function buildVpcLab(t: Teardown | undefined, opts: VpcLabOptions = {}): Promise<VpcLab> {
  const lab = await buildClusterLab(undefined, { holdTime: '3s', ...opts.cluster, subnets: opts.subnets ?? 3, hostsPerSubnet: opts.hostsPerSubnet ?? 4, etcdMembers: opts.etcdMembers ?? 1 });
  let moto: MotoServer | undefined;
  let proxy: Ec2Proxy | undefined;
  let vlab: VpcLab | undefined;
  try {
    moto = await startMoto(undefined, { netns: lab.router.name, host: '198.18.1.1' });
    proxy = await startEc2Proxy(undefined, moto.localEndpoint);
    const port = await freePort();
    const ec2 = new EC2Client({ ...moto.clientConfig(), maxAttempts: 2 });
    vlab = new VpcLab(lab, moto, proxy, `http://198.18.1.1:${port}`, ec2);
    vlab.forward = await fromNamespace(undefined, lab.router.name, '198.18.1.1', port, proxy.port);
    await vlab.provision(opts.gatewayRoutes ?? true);
  } catch (err) {
    await vlab?.destroy();
    await proxy?.close();
    await moto?.stop();
    await lab.destroy();
    throw err;
  }
  const built = vlab;
  onTeardown(t, () => built.destroy());
  return built;
}
