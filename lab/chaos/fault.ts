// What a chaos fault is: a name, what it does, whether the docs promise that
// it loses nothing, and a run() that injects it into a lab cluster and undoes
// it. The runner (runner.ts) measures around it: pings, route logs, CNI
// churn, time to recover.
//
// Invariants: a fault undoes everything it did before run() resolves (even
// when it throws: use try/finally); it touches only the lab's namespaces,
// processes and etcd.

import type { ClusterLab, LabHost, LabPod } from '../cluster-lab.js';
import type { VpcLab } from '../vpc-lab.js';

/** The VPC side of a cluster run in VPC mode. */
export interface ChaosVpc {
  readonly lab: VpcLab;
  /** The lab's one subnet. */
  readonly subnet: string;
  /** Port of the daemons' EC2 endpoint on 198.18.1.1 (the proxy's forward). */
  readonly ec2Port: number;
}

export interface ChaosWorld {
  readonly cluster: ClusterLab;
  /** One pod per host, same order as cluster.hosts. */
  readonly pods: readonly LabPod[];
  /** Hold time of the lab's daemons (ms). */
  readonly holdMs: number;
  /** A line for the run's log. */
  note(message: string): void;
  /** In VPC mode: the EC2 side (the VPC faults are skipped without it). */
  readonly vpc?: ChaosVpc;
  /**
   * Starts the spare host (built, never started: a node joining), once; it
   * counts as a live host from then on. Undefined when there is none left.
   */
  joinSpare(): Promise<LabHost | undefined>;
}

export interface FaultEffects {
  /** Hosts really cut off by the fault: peers may withdraw their routes, pings to and from their pods may fail. */
  readonly cutOff?: readonly LabHost[];
  /** Destinations no host may ever route (forged advertisements). */
  readonly forbidden?: readonly string[];
  /** Promises the fault itself saw broken (e.g. no takeover); a promised fault with any fails. */
  readonly violations?: readonly string[];
}

export interface ChaosFault {
  /** Short kebab-case name, the table's first column and the --faults argument. */
  readonly name: string;
  readonly summary: string;
  /**
   * Whether the docs promise this fault loses nothing (no packet, no route
   * wrongly removed or installed, no address lost or duplicated). Faults that
   * are not (yet) promised are run and reported, never failed.
   */
  readonly promised: boolean;
  /** Runs only on a cluster in VPC mode (the runner skips it otherwise, and says so); run() may then use vpcOf(world). */
  readonly needsVpc?: boolean;
  run(world: ChaosWorld): Promise<FaultEffects>;
}

/** The EC2 side of a fault marked needsVpc (the runner never runs one without it). */
export function vpcOf(world: ChaosWorld): ChaosVpc {
  if (world.vpc === undefined) throw new Error('a VPC fault was run on a cluster not in VPC mode');
  return world.vpc;
}
