// The demo's VPC router: a network namespace whose kernel forwards between
// the subnets exactly as the VPC route tables in moto say.
//
// Each EC2 route table of a subnet becomes a kernel routing table in the
// router namespace, selected by a policy rule for packets arriving on that
// subnet's bridge (as a VPC routes a packet by the table of the subnet it
// leaves). Every entry that targets an instance becomes a route to that
// instance's host address on its subnet's bridge. Entries are re-read every
// `intervalMs`; only the routes this router installed are ever changed.

import { DescribeRouteTablesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { contains, parsePrefix, type Prefix } from '../../src/core/cidr.js';
import type { Lab, Netns } from '../../lab/netns.js';

export interface RouterTable {
  /** EC2 route table id. */
  readonly id: string;
  /** Bridge (in the router namespace) of the subnet this table routes for. */
  readonly bridge: string;
}

export interface VpcRouterOptions {
  readonly lab: Lab;
  readonly router: Netns;
  readonly ec2: EC2Client;
  readonly tables: readonly RouterTable[];
  /** Instance id → its host address and the bridge it sits on. */
  readonly instances: ReadonlyMap<string, { ip: string; bridge: string }>;
  /** Primary network interface id → its instance id (entries target either). */
  readonly interfaces?: ReadonlyMap<string, string>;
  /** Only entries inside the pod network are followed. */
  readonly network: Prefix;
  readonly intervalMs?: number;
}

const KERNEL_TABLE_BASE = 100;

export class VpcRouter {
  private timer: NodeJS.Timeout | undefined;
  private readonly installed = new Map<number, Map<string, string>>();
  private running: Promise<void> | undefined;
  /** Passes that changed something. */
  changes = 0;

  constructor(private readonly o: VpcRouterOptions) {}

  private kernelTable(i: number): number {
    return KERNEL_TABLE_BASE + i;
  }

  async start(): Promise<void> {
    const rules = this.o.tables.map((t, i) => `rule add iif ${t.bridge} lookup ${this.kernelTable(i)} pref ${this.kernelTable(i)}`);
    await this.batch(rules);
    await this.sync();
    this.timer = setInterval(() => {
      this.running ??= this.sync()
        .catch(() => undefined)
        .finally(() => {
          this.running = undefined;
        });
    }, this.o.intervalMs ?? 300);
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.running;
  }

  private async batch(commands: readonly string[]): Promise<void> {
    if (commands.length === 0) return;
    await this.o.lab.exec(this.o.router, 'sh', ['-c', `printf '%s\\n' "$@" | ip -force -batch -`, 'sh', ...commands]);
  }

  /** One pass: make every kernel table match its EC2 route table. */
  async sync(): Promise<void> {
    const out = await this.o.ec2.send(new DescribeRouteTablesCommand({ RouteTableIds: this.o.tables.map((t) => t.id) }));
    const commands: string[] = [];
    for (const [i, t] of this.o.tables.entries()) {
      const rt = out.RouteTables?.find((r) => r.RouteTableId === t.id);
      const want = new Map<string, string>();
      for (const r of rt?.Routes ?? []) {
        const instance = r.InstanceId ?? (r.NetworkInterfaceId === undefined ? undefined : this.o.interfaces?.get(r.NetworkInterfaceId));
        const target = instance === undefined ? undefined : this.o.instances.get(instance);
        const dst = r.DestinationCidrBlock;
        if (target === undefined || dst === undefined || !contains(this.o.network, parsePrefix(dst))) continue;
        want.set(dst, `via ${target.ip} dev ${target.bridge}`);
      }
      const have = this.installed.get(i) ?? new Map<string, string>();
      const table = this.kernelTable(i);
      for (const [dst, how] of want) if (have.get(dst) !== how) commands.push(`route replace ${dst} ${how} table ${table}`);
      for (const dst of have.keys()) if (!want.has(dst)) commands.push(`route del ${dst} table ${table}`);
      this.installed.set(i, want);
    }
    if (commands.length > 0) {
      await this.batch(commands);
      this.changes++;
    }
  }

  /** The routes installed, per EC2 table id: destination → "via IP dev BRIDGE". */
  snapshot(): Map<string, Map<string, string>> {
    return new Map(this.o.tables.map((t, i) => [t.id, new Map(this.installed.get(i) ?? [])]));
  }
}
