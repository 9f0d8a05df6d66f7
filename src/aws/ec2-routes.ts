// The EC2 adapter of the VPC advertiser: read the cluster's route tables,
// write single routes, turn off this instance's source/destination check.
//
// * One DescribeRouteTables (MaxResults 100, following NextToken pages) per
//   read, for every table of the topology at once; instance targets are filtered here, not by
//   the API (moto lacks the route.instance-id filter). The topology's "main"
//   is the VPC's main table, found through the vpc-id filter.
// * Targets: every route is written to the forwarder's primary network
//   interface (NetworkInterfaceId, device index 0, found by DescribeInstances
//   and cached: it lives as long as the instance), which works for instances
//   with several interfaces, where an InstanceId target is refused. A read
//   reports a route to the primary interface of a known instance as a route
//   to that instance, exactly like a route written with InstanceId: entries
//   made with InstanceId are adopted in place, never rewritten or deleted
//   for their target's form. Routes to other interfaces stay foreign.
// * Instance states (instanceStates, for the node collector): DescribeInstances
//   with up to 100 ids a call, paged, never cached; an id EC2 does not know
//   is reported "not-found" (asked alone after its batch failed).
// * Writes are idempotent: a create that finds the destination taken
//   replaces it, a replace that finds none creates, a delete of a missing
//   route succeeds.
// * Every write's destination must lie inside the pod network: anything else
//   (0.0.0.0/0, the local route, NAT or gateway routes) is refused before a
//   request is made.
// * Pacing: every attempt first takes a token from the client-side bucket of
//   its action class (token-bucket.ts: route writes and
//   ModifyInstanceAttribute share the mutating bucket, reads the describe
//   bucket), waiting for one when it is empty, so the adapter does not send
//   what EC2's own buckets would refuse: no refill is counted while a call
//   is in flight (EC2 takes its token at an unknown moment in between), and
//   a throttled answer empties the client bucket (EC2's is empty).
// * Throttling (RequestLimitExceeded, Throttling…) is retried with capped
//   exponential backoff and full jitter for as long as `keepTrying()` holds
//   (a pass never gives up because EC2 is busy: it waits, then goes on with
//   the same call); 5xx answers and network errors are retried the same way
//   at most `maxAttempts` attempts per call. The SDK's own retries are off so
//   that every attempt is counted by the observer.

import { CreateRouteCommand, DeleteRouteCommand, DescribeInstancesCommand, DescribeRouteTablesCommand, EC2Client, ModifyInstanceAttributeCommand, ReplaceRouteCommand, type Filter, type Instance, type Route, type RouteTable } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { backoffDelay } from '../core/backoff.js';
import { EC2_DESCRIBE_BUCKET, EC2_MUTATE_BUCKET, TokenBucket, type BucketSettings } from '../core/token-bucket.js';
import { sleep } from '../retry.js';
import { contains, formatPrefix, type Prefix } from '../core/cidr.js';
import type { VpcEntry, VpcStep } from '../core/vpc-diff.js';
import { ErrorCode, TrellisError } from '../errors.js';
import type { DescribedRoute, DescribedTable } from '../core/vpc-table-state.js';

export type CallResult = 'ok' | 'throttled' | 'error';

/** Told about every attempt (for metrics and tests). */
export interface Ec2CallObserver {
  call(action: string, result: CallResult): void;
  retry(action: string): void;
  /** A call failed with a retryable error on its last allowed attempt. */
  exhausted(action: string): void;
  /** Whether EC2 answered an attempt at all (any HTTP answer, refusals included; not a timeout or a broken connection). */
  answered?(answered: boolean): void;
}

export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 5000 };

export interface Ec2Settings {
  /** "" = the regional AWS endpoint. */
  readonly endpoint: string;
  readonly region: string;
}

export interface Ec2RoutesOptions {
  readonly client: EC2Client;
  /** Needed only for the topology's "main" table. */
  readonly vpcId: string;
  readonly log: Logger;
  readonly observer?: Ec2CallObserver;
  readonly retry?: Partial<RetryPolicy>;
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Client-side buckets (default: EC2's documented ones); `false` sends without pacing. */
  readonly buckets?: { readonly mutate: BucketSettings; readonly describe: BucketSettings } | false;
  readonly now?: () => number;
  /** Asked before each retry of a throttled call of `action`; false stops retrying (E_UNAVAILABLE). Default: always true. */
  readonly keepTrying?: (action: string) => boolean;
}

/** Actions paced by the describe bucket; every other action takes from the mutating one. */
const DESCRIBE_ACTIONS = new Set(['DescribeRouteTables', 'DescribeInstances']);

export interface DescribeResult {
  readonly tables: readonly DescribedTable[];
  /** Tables of the topology that EC2 does not know. */
  readonly missing: readonly string[];
}

/** Instance ids per DescribeInstances call. */
const INSTANCES_PER_CALL = 100;

/** Route tables per DescribeRouteTables page (EC2 allows 5..100; each table comes whole, all its routes in one page). */
const DESCRIBE_PAGE = 100;

const THROTTLE_CODES = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'RequestThrottled', 'TooManyRequestsException', 'SlowDown']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

interface AwsErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** The AWS error code of a failure ("RouteAlreadyExists"…), or the error's name. */
export function awsCode(err: unknown): string {
  const e = err as AwsErrorShape;
  return e?.name ?? e?.code ?? 'Error';
}

export function isThrottle(err: unknown): boolean {
  return THROTTLE_CODES.has(awsCode(err));
}

/** EC2 answered (any HTTP status): the failure is not a timeout or a broken connection. */
export function ec2Answered(err: unknown): boolean {
  return ((err as AwsErrorShape)?.$metadata?.httpStatusCode ?? 0) > 0;
}

/** Worth another attempt: throttling, server errors, timeouts, broken connections. */
export function isRetryable(err: unknown): boolean {
  const e = err as AwsErrorShape;
  const status = e?.$metadata?.httpStatusCode ?? 0;
  return isThrottle(err) || status >= 500 || NETWORK_CODES.has(e?.code ?? '') || e?.name === 'TimeoutError' || /socket hang up/i.test(e?.message ?? '');
}

/** An EC2 client with the SDK's retries off and request deadlines. */
export function ec2Client(settings: Ec2Settings): EC2Client {
  return new EC2Client({
    region: settings.region,
    ...(settings.endpoint !== '' ? { endpoint: settings.endpoint } : {}),
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 3000, requestTimeout: 10_000 },
  });
}

/** `owners`: primary interface id → instance id, for the instances known. */
function toDescribed(r: Route, owners: ReadonlyMap<string, string>): DescribedRoute {
  const viaInterface = r.InstanceId === undefined && r.NetworkInterfaceId !== undefined ? owners.get(r.NetworkInterfaceId) : undefined;
  const instanceId = r.InstanceId ?? viaInterface;
  const other =
    r.GatewayId ?? r.NatGatewayId ?? r.TransitGatewayId ?? r.VpcPeeringConnectionId ?? r.EgressOnlyInternetGatewayId ??
    r.LocalGatewayId ?? r.CarrierGatewayId ?? r.CoreNetworkArn ?? (instanceId === undefined ? r.NetworkInterfaceId : undefined);
  return { destination: r.DestinationCidrBlock, instanceId, otherTarget: other, state: r.State };
}

export class Ec2Routes {
  /** Instance id → its primary network interface id, and back. */
  private readonly primary = new Map<string, string>();
  private readonly owners = new Map<string, string>();
  /** Instances EC2 does not know (terminated): not asked for again. */
  private readonly unknown = new Set<string>();
  private readonly retry: RetryPolicy;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly mutateBucket: TokenBucket | undefined;
  private readonly describeBucket: TokenBucket | undefined;
  /** Milliseconds spent waiting for client-side tokens, per bucket (for tests and benches). */
  readonly paced = { mutate: 0, describe: 0 };

  constructor(private readonly options: Ec2RoutesOptions) {
    this.retry = { ...DEFAULT_RETRY, ...(options.retry ?? {}) };
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? sleep;
    const now = options.now ?? Date.now;
    this.now = now;
    const buckets = options.buckets ?? { mutate: EC2_MUTATE_BUCKET, describe: EC2_DESCRIBE_BUCKET };
    this.mutateBucket = buckets === false ? undefined : new TokenBucket(buckets.mutate, now);
    this.describeBucket = buckets === false ? undefined : new TokenBucket(buckets.describe, now);
  }

  /** Waits for a token of `action`'s bucket. */
  private async pace(action: string): Promise<TokenBucket | undefined> {
    const describe = DESCRIBE_ACTIONS.has(action);
    const bucket = describe ? this.describeBucket : this.mutateBucket;
    if (bucket === undefined) return undefined;
    while (!bucket.tryTake()) {
      const wait = bucket.waitMs();
      this.paced[describe ? 'describe' : 'mutate'] += wait;
      await this.sleep(wait);
    }
    return bucket;
  }

  /** One attempt loop of `action`; throws a TrellisError once retries are spent or on a final error. */
  private async call<T>(action: string, send: () => Promise<T>, tolerate: (code: string) => boolean = () => false, keepTrying = this.options.keepTrying): Promise<T | undefined> {
    const { observer, log } = this.options;
    for (let attempt = 1; ; attempt++) {
      const bucket = await this.pace(action);
      const sentAt = this.now();
      try {
        const out = await send().finally(() => bucket?.skipSince(sentAt));
        observer?.answered?.(true);
        observer?.call(action, 'ok');
        return out;
      } catch (err) {
        const code = awsCode(err);
        observer?.answered?.(ec2Answered(err));
        if (tolerate(code)) {
          observer?.call(action, 'ok');
          return undefined;
        }
        observer?.call(action, isThrottle(err) ? 'throttled' : 'error');
        if (isThrottle(err)) bucket?.drain();
        const giveUp = isThrottle(err) ? !(keepTrying?.(action) ?? true) : attempt >= this.retry.maxAttempts;
        if (!isRetryable(err) || giveUp) {
          if (isRetryable(err)) observer?.exhausted(action);
          const spent = isRetryable(err) ? ` after ${attempt} attempts` : '';
          throw new TrellisError(isRetryable(err) ? ErrorCode.Unavailable : ErrorCode.Cloud, `EC2 ${action} failed${spent}: ${code}: ${(err as Error).message}`, {
            cause: err,
            details: { action, awsCode: code, attempts: attempt },
          });
        }
        const wait = backoffDelay({ initialMs: this.retry.baseDelayMs, maxMs: this.retry.maxDelayMs, jitter: 'full' }, attempt, this.random);
        observer?.retry(action);
        log.debug({ action, code, attempt, waitMs: wait }, 'EC2 call failed; retrying');
        await this.sleep(wait);
      }
    }
  }

  /**
   * DescribeInstances of `ids`, 100 ids a call, following pages. One unknown
   * id fails a whole call: that call's ids are then asked one by one, and those
   * EC2 does not know are listed in `notFound` (InvalidInstanceID.NotFound) or
   * `malformed`. Any other failure throws.
   */
  private async describeInstances(ids: readonly string[], keepTrying?: (action: string) => boolean): Promise<{ found: Instance[]; notFound: string[]; malformed: string[] }> {
    const found: Instance[] = [];
    const notFound: string[] = [];
    const malformed: string[] = [];
    const read = async (chunk: string[]): Promise<void> => {
      let token: string | undefined;
      do {
        const page = await this.call('DescribeInstances', () =>
          this.options.client.send(new DescribeInstancesCommand({ InstanceIds: chunk, ...(token === undefined ? {} : { NextToken: token }) })),
          () => false, keepTrying,
        );
        found.push(...(page?.Reservations ?? []).flatMap((r) => r.Instances ?? []));
        token = page?.NextToken;
      } while (token !== undefined && token !== '');
    };
    const invalid = (err: unknown): string => awsCode((err as { cause?: unknown }).cause ?? err);
    for (let i = 0; i < ids.length; i += INSTANCES_PER_CALL) {
      const chunk = ids.slice(i, i + INSTANCES_PER_CALL);
      try {
        await read(chunk);
      } catch (err) {
        if (!/^InvalidInstanceID/.test(invalid(err))) throw err;
        for (const id of chunk) {
          await read([id]).catch((e: unknown) => {
            const code = invalid(e);
            if (code === 'InvalidInstanceID.NotFound') notFound.push(id);
            else if (/^InvalidInstanceID/.test(code)) malformed.push(id);
            else throw e;
          });
        }
      }
    }
    return { found, notFound, malformed };
  }

  /** Learns the primary interfaces of `instanceIds` not known yet (DescribeInstances); unknown instances are skipped. */
  async learnInterfaces(instanceIds: readonly string[]): Promise<void> {
    const unknown = [...new Set(instanceIds)].filter((id) => id !== '' && !this.primary.has(id) && !this.unknown.has(id));
    if (unknown.length === 0) return;
    for (const inst of (await this.describeInstances(unknown)).found) {
      const eni = (inst.NetworkInterfaces ?? []).find((n) => n.Attachment?.DeviceIndex === 0)?.NetworkInterfaceId;
      if (inst.InstanceId !== undefined && eni !== undefined) {
        this.primary.set(inst.InstanceId, eni);
        this.owners.set(eni, inst.InstanceId);
      }
    }
    for (const id of unknown) if (!this.primary.has(id)) this.unknown.add(id);
  }

  /**
   * What EC2 says of each of `instanceIds` now: its state name ("running",
   * "terminated"…), "not-found" when EC2 does not know it, "malformed" when
   * the id is refused. Never cached. Throws (TrellisError) when a call fails
   * or stays throttled: then nothing is known of any of them. `keepTrying`
   * replaces the adapter's own for these calls (a throttled call waits while
   * it holds).
   */
  async instanceStates(instanceIds: readonly string[], keepTrying?: () => boolean): Promise<Map<string, string>> {
    const ids = [...new Set(instanceIds)].filter((id) => id !== '');
    const { found, notFound, malformed } = await this.describeInstances(ids, keepTrying === undefined ? undefined : () => keepTrying());
    const out = new Map<string, string>();
    for (const inst of found) if (inst.InstanceId !== undefined) out.set(inst.InstanceId, inst.State?.Name ?? 'unknown');
    for (const id of notFound) out.set(id, 'not-found');
    for (const id of malformed) out.set(id, 'malformed');
    return out;
  }

  /** The primary network interface of `instanceId` (the route target written). */
  async interfaceOf(instanceId: string): Promise<string> {
    await this.learnInterfaces([instanceId]);
    const eni = this.primary.get(instanceId);
    if (eni === undefined) {
      throw new TrellisError(ErrorCode.Cloud, `instance ${instanceId} has no primary network interface in EC2 (DescribeInstances): cannot route to it`, { details: { instanceId } });
    }
    return eni;
  }

  /**
   * The topology's tables as EC2 has them, with one DescribeRouteTables (and
   * its pages). `instances`: the cluster's instances, whose primary-interface
   * routes count as routes to them (learned once, with DescribeInstances).
   */
  async describe(names: readonly string[], instances: readonly string[] = []): Promise<DescribeResult> {
    const wanted = [...new Set(names)];
    const ids = wanted.filter((n) => n !== 'main');
    const needMain = wanted.includes('main');
    if (needMain && this.options.vpcId === '') {
      throw new TrellisError(ErrorCode.Config, 'a subnet of the topology names no route table, so the VPC main table is used: set vpc.vpcId');
    }
    if (wanted.length === 0) return { tables: [], missing: [] };
    if (instances.length > 0) {
      await this.learnInterfaces(instances).catch((err: unknown) =>
        this.options.log.warn({ err: (err as Error).message }, 'cannot read the instances\' network interfaces: routes to them count as foreign'),
      );
    }
    const filters: Filter[] = needMain ? [{ Name: 'vpc-id', Values: [this.options.vpcId] }] : [{ Name: 'route-table-id', Values: ids }];
    const found: RouteTable[] = [];
    let token: string | undefined;
    do {
      const page = await this.call('DescribeRouteTables', () =>
        this.options.client.send(new DescribeRouteTablesCommand({ Filters: filters, MaxResults: DESCRIBE_PAGE, ...(token === undefined ? {} : { NextToken: token }) })),
      );
      found.push(...(page?.RouteTables ?? []));
      token = page?.NextToken;
    } while (token !== undefined && token !== '');
    const tables: DescribedTable[] = [];
    const missing: string[] = [];
    for (const name of wanted) {
      const t = name === 'main' ? found.find((rt) => (rt.Associations ?? []).some((a) => a.Main === true)) : found.find((rt) => rt.RouteTableId === name);
      if (t?.RouteTableId === undefined) missing.push(name);
      else tables.push({ name, id: t.RouteTableId, routes: (t.Routes ?? []).map((r) => toDescribed(r, this.owners)) });
    }
    return { tables, missing };
  }

  private guard(entry: VpcEntry, network: Prefix): void {
    if (!contains(network, entry.destination)) {
      throw new TrellisError(ErrorCode.Internal, `refusing to write ${formatPrefix(entry.destination)}: outside the pod network ${formatPrefix(network)}`, {
        details: { destination: formatPrefix(entry.destination) },
      });
    }
  }

  private async create(tableId: string, e: VpcEntry): Promise<unknown> {
    const input = { RouteTableId: tableId, DestinationCidrBlock: formatPrefix(e.destination), NetworkInterfaceId: await this.interfaceOf(e.target) };
    return this.call('CreateRoute', () => this.options.client.send(new CreateRouteCommand(input)), (c) => c === 'RouteAlreadyExists').then(async (out) => {
      if (out === undefined) await this.replace(tableId, e, false);
    });
  }

  private async replace(tableId: string, e: VpcEntry, fallback = true): Promise<unknown> {
    const input = { RouteTableId: tableId, DestinationCidrBlock: formatPrefix(e.destination), NetworkInterfaceId: await this.interfaceOf(e.target) };
    const missing = (c: string): boolean => fallback && (c === 'InvalidRoute.NotFound' || c === 'InvalidParameterValue');
    return this.call('ReplaceRoute', () => this.options.client.send(new ReplaceRouteCommand(input)), missing).then(async (out) => {
      if (out === undefined) await this.create(tableId, e);
    });
  }

  private remove(tableId: string, e: VpcEntry): Promise<unknown> {
    const input = { RouteTableId: tableId, DestinationCidrBlock: formatPrefix(e.destination) };
    return this.call('DeleteRoute', () => this.options.client.send(new DeleteRouteCommand(input)), (c) => c === 'InvalidRoute.NotFound');
  }

  /** Applies one step to the table whose EC2 id is `tableId`; `network` is the pod network. */
  async apply(step: VpcStep, tableId: string, network: Prefix): Promise<void> {
    this.guard(step.entry, network);
    if (step.kind === 'create') await this.create(tableId, step.entry);
    else if (step.kind === 'replace') await this.replace(tableId, step.entry);
    else await this.remove(tableId, step.entry);
  }

  /** Lets the instance forward traffic that is not addressed to it (ModifyInstanceAttribute). */
  async disableSourceDestCheck(instanceId: string): Promise<void> {
    await this.call('ModifyInstanceAttribute', () =>
      this.options.client.send(new ModifyInstanceAttributeCommand({ InstanceId: instanceId, SourceDestCheck: { Value: false } })),
    );
  }
}
