// The node's advertisement policy, in process: the real allocator over the
// in-memory block store, a sink that records what would be published, an
// injected clock and reclaim timer. No etcd, no root.

import t from 'tap';
import pino from 'pino';
import { contains, parsePrefix } from '../../src/core/cidr.js';
import { Ipam } from '../../src/core/ipam.js';
import { MemoryIpamStore, type StoreHook } from '../../src/core/memory-store.js';
import type { Subnet, Topology } from '../../src/core/topology.js';
import type { Advertisement, Node } from '../../src/gen/trellis/v1/records_pb.js';
import { Keys } from '../../src/state/keys.js';
import type { BlockInfo } from '../../src/state/validate.js';
import { NodeAdvertisement, reclaimPeriodMs, type AdvertisementSink, type ReclaimTimers } from '../../daemon/node-advertisement.js';

const P = parsePrefix;
const log = pino({ level: 'silent' });
const keys = new Keys('/trellis');
const subnetA: Subnet = { id: 'subnet-a', zone: 'z1', cidr: P('198.18.0.0/24'), podPrefix: P('100.64.0.0/28'), podPrefixExplicit: true, routeTable: undefined };
const subnetB: Subnet = { id: 'subnet-b', zone: 'z1', cidr: P('198.18.1.0/24'), podPrefix: P('100.64.0.16/28'), podPrefixExplicit: true, routeTable: undefined };
// Four /30 blocks per subnet.
const topology: Topology = { network: P('100.64.0.0/16'), blockSize: 30, nodeHomeSize: 28, subnetSize: 24, zones: [{ name: 'z1', subnets: [subnetA, subnetB] }] };
const GRACE = 60_000;

/** Records every put and, at each flush, what a peer would then see. */
class FakeSink implements AdvertisementSink {
  node: Node | undefined;
  advertisement: Advertisement | undefined;
  /** The advertised prefixes at each flush. */
  flushed: string[][] = [];
  verified: string[] = [];
  setNode(key: string, record: Node): void {
    t.equal(key, keys.node('n1'));
    this.node = record;
  }
  setAdvertisement(key: string, record: Advertisement): void {
    t.equal(key, keys.route('subnet-a', 'n1'));
    this.advertisement = record;
  }
  async flush(): Promise<boolean> {
    this.flushed.push([...(this.advertisement?.prefixes ?? [])]);
    return true;
  }
  verify(key: string): void {
    this.verified.push(key);
  }
  /** What peers see now (the last flush). */
  get published(): string[] {
    return this.flushed.at(-1) ?? [];
  }
}

class FakeTimers implements ReclaimTimers {
  fn: (() => void) | undefined;
  ms: number | undefined;
  cleared = false;
  setInterval(fn: () => void, ms: number): unknown {
    this.fn = fn;
    this.ms = ms;
    return 7;
  }
  clearInterval(handle: unknown): void {
    t.equal(handle, 7);
    this.cleared = true;
  }
}

function fixture(hook?: StoreHook, onLost?: (blocks: string[]) => void) {
  let now = 1_000_000;
  const clock = { now: () => now, advance: (ms: number) => void (now += ms) };
  const sink = new FakeSink();
  const timers = new FakeTimers();
  const store = new MemoryIpamStore(hook === undefined ? {} : { hook });
  const adv = new NodeAdvertisement({
    node: 'n1', hostIP: '198.18.0.10', instanceId: 'i-1', subnet: subnetA, healthEndpoint: '198.18.0.10:9653', agentVersion: '9.9.9',
    keys, sink, log, blockGraceMs: GRACE, now: clock.now, timers, ...(onLost === undefined ? {} : { onLost }),
  });
  const ipam = new Ipam({ topology, subnet: subnetA, node: 'n1', store, claims: store, clock: clock.now, addressRestMs: 0, blockGraceMs: GRACE, beforeRelease: adv.beforeRelease });
  return { clock, sink, timers, store, adv, ipam };
}

const pod = (id: string) => ({ containerId: id, ifName: 'eth0' });
const info = (prefix: string, subnet: Subnet = subnetA): BlockInfo => ({ prefix: P(prefix), node: 'n1', subnet });

t.test('publishNode puts the node record, with the first advertisement', async (t) => {
  const { sink, adv, ipam } = fixture();
  adv.publishNode();
  t.equal(sink.node, undefined, 'not before there is an advertisement to write with it');
  await adv.claim(ipam);
  t.ok(sink.advertisement);
  t.equal(sink.node?.name, 'n1');
  t.equal(sink.node?.subnet, 'subnet-a');
  t.equal(sink.node?.zone, 'z1');
  t.equal(sink.node?.hostIp, '198.18.0.10');
  t.equal(sink.node?.instanceId, 'i-1');
  t.equal(sink.node?.healthEndpoint, '198.18.0.10:9653');
  t.equal(sink.node?.agentVersion, '9.9.9');
  t.equal(Number(sink.node?.startedAt?.seconds), 1000, 'started now (injected clock)');
});

t.test('claim holds a block and publishes it before resolving', async (t) => {
  const { sink, adv, ipam, store } = fixture();
  t.same(sink.flushed, [], 'nothing published before the claim');
  const blocks = await adv.claim(ipam);
  t.equal(blocks.length, 1);
  t.same(store.snapshot().map((b) => b.prefix), blocks, 'the block record exists');
  t.same(sink.published, blocks, 'and the advertisement holding it was flushed');
  t.equal(sink.advertisement?.nextHop, '198.18.0.10');
  t.equal(sink.advertisement?.node, 'n1');
  t.equal(sink.advertisement?.subnet, 'subnet-a');
  t.equal(sink.advertisement?.instanceId, 'i-1');
  t.same(await adv.claim(ipam), blocks, 'a second claim keeps the same block');
});

t.test('ensureAdvertised: a block allocated from is published before the address is handed out', async (t) => {
  const { sink, adv, ipam } = fixture();
  await adv.claim(ipam);
  const got: string[] = [];
  for (let i = 0; i < 8; i++) {
    const r = await ipam.allocate(pod(`p${i}`));
    await adv.ensureAdvertised(r.block);
    t.ok(sink.published.some((p) => p === r.block || contains(P(p), P(r.block))), `${r.block} published (possibly aggregated)`);
    got.push(r.block);
  }
  const blocks = [...new Set(got)].sort();
  t.equal(blocks.length, 2, 'eight addresses need two /30 blocks');
  t.same(adv.blocks(), blocks);
  t.same(sink.published, ['100.64.0.0/29'], 'two adjacent blocks are published as their aggregate');
});

t.test('followBlocks follows the block records of this node in its subnet', async (t) => {
  const lost: string[][] = [];
  const { sink, adv, ipam } = fixture(undefined, (blocks) => lost.push(blocks));
  const [first] = await adv.claim(ipam);
  adv.followBlocks([info(first as string), info('100.64.0.8/30'), info('100.64.0.16/30', subnetB)]);
  t.same(adv.blocks(), [first, '100.64.0.8/30'], 'a block of another subnet is not advertised here');
  t.same(sink.advertisement?.prefixes, [first, '100.64.0.8/30']);
  adv.followBlocks([info('100.64.0.8/30')]);
  t.same(sink.advertisement?.prefixes, ['100.64.0.8/30'], 'a block whose record went away is withdrawn');
  const puts = sink.advertisement;
  adv.followBlocks([info('100.64.0.8/30')]);
  t.equal(sink.advertisement, puts, 'no change, no new put');
  t.same(lost, [[first]], 'a block whose record went away without a release of ours was taken: onLost is told');
  adv.followBlocks([]);
  t.same(sink.advertisement?.prefixes, [], 'the last block taken is withdrawn too: an empty advertisement');
  t.same(lost, [[first], ['100.64.0.8/30']]);
});

t.test('an empty set is never published when no block was taken', async (t) => {
  const lost: string[][] = [];
  const { sink, adv, ipam } = fixture(undefined, (blocks) => lost.push(blocks));
  const [first] = await adv.claim(ipam);
  await adv.beforeRelease(first as string);
  t.same(sink.advertisement?.prefixes, [first], 'releasing the only block leaves the last advertisement');
  adv.followBlocks([]);
  t.same(sink.advertisement?.prefixes, [first], 'and its record going away publishes no empty set');
  t.same(lost, [], 'a block this node gave back is not lost');
});

t.test('a block claimed before its record is seen stays advertised while the view lags', async (t) => {
  const { adv, ipam } = fixture();
  const [first] = await adv.claim(ipam);
  adv.followBlocks([info(first as string)]);
  await adv.ensureAdvertised('100.64.0.4/30');
  adv.followBlocks([info(first as string)]);
  t.same(adv.blocks(), [first, '100.64.0.4/30'], 'an older view does not undo the claim');
});

t.test('verify repairs only our own keys', async (t) => {
  const { sink, adv } = fixture();
  adv.verify(keys.node('n1'), undefined);
  adv.verify(keys.route('subnet-a', 'n1'), { value: 'x', lease: '1' });
  adv.verify(keys.node('n2'), undefined);
  t.same(sink.verified, [keys.node('n1'), keys.route('subnet-a', 'n1')]);
  t.ok(adv.owns(keys.node('n1')));
  t.notOk(adv.owns(keys.route('subnet-b', 'n1')));
});

t.test('reclaim gives back an empty block, withdrawn and flushed before its record is deleted', async (t) => {
  const deletes: Array<{ prefix: string; published: string[] }> = [];
  let sinkRef: FakeSink | undefined;
  const f = fixture((op, prefix) => {
    if (op === 'releaseBlock') deletes.push({ prefix: prefix as string, published: [...(sinkRef?.published ?? [])] });
  });
  sinkRef = f.sink;
  const { sink, adv, ipam, clock, timers, store } = f;
  await adv.claim(ipam);
  for (let i = 0; i < 5; i++) await adv.ensureAdvertised((await ipam.allocate(pod(`p${i}`))).block);
  t.equal(adv.blocks().length, 2);
  await ipam.release('p4', 'eth0');
  adv.startReclaim();
  t.equal(timers.ms, reclaimPeriodMs(GRACE), 'reclaim period derives from the grace');
  t.equal(reclaimPeriodMs(GRACE), 15_000);
  t.equal(reclaimPeriodMs(1000), 1000, 'at least 1 s');
  t.equal(reclaimPeriodMs(3_600_000), 60_000, 'at most 60 s');

  await adv.reclaim();
  t.same(deletes, [], 'not before the grace period');
  t.equal(adv.blocks().length, 2);

  clock.advance(GRACE);
  await adv.reclaim();
  t.same(deletes, [{ prefix: '100.64.0.4/30', published: ['100.64.0.0/30'] }], 'the withdrawal was flushed before the delete');
  t.same(adv.blocks(), ['100.64.0.0/30']);
  t.same(sink.published, ['100.64.0.0/30']);
  t.same(store.snapshot().map((b) => b.prefix), ['100.64.0.0/30']);

  for (let i = 0; i < 4; i++) await ipam.release(`p${i}`, 'eth0');
  clock.advance(GRACE);
  await adv.reclaim();
  t.same(adv.blocks(), ['100.64.0.0/30'], 'the last block is kept');

  adv.stop();
  t.ok(timers.cleared, 'stop clears the reclaim timer');
});

t.test('a release that fails after the withdrawal is advertised again', async (t) => {
  let failDelete = true;
  const { sink, adv, ipam, clock } = fixture((op) => {
    if (op === 'releaseBlock' && failDelete) throw new Error('etcd unavailable');
  });
  await adv.claim(ipam);
  for (let i = 0; i < 5; i++) await adv.ensureAdvertised((await ipam.allocate(pod(`p${i}`))).block);
  adv.followBlocks([info('100.64.0.0/30'), info('100.64.0.4/30')]); // the watch has delivered both records
  await ipam.release('p4', 'eth0');
  clock.advance(GRACE);
  await adv.reclaim();
  t.ok(sink.flushed.some((f) => f.join() === '100.64.0.0/30'), 'the block was withdrawn for the attempt');
  t.same(adv.blocks(), ['100.64.0.0/30', '100.64.0.4/30'], 'its record is still ours: advertised again');
  t.same(sink.advertisement?.prefixes, ['100.64.0.0/29']);
  failDelete = false;
  await adv.reclaim();
  t.same(adv.blocks(), ['100.64.0.0/30'], 'released on the next period');
  adv.followBlocks([info('100.64.0.0/30')]);
  t.same(adv.blocks(), ['100.64.0.0/30'], 'and stays withdrawn once the view has seen the delete');
});

t.test('the reclaim timer runs reclaim', async (t) => {
  const { adv, ipam, timers, clock, store } = fixture();
  await adv.claim(ipam);
  for (let i = 0; i < 5; i++) await adv.ensureAdvertised((await ipam.allocate(pod(`p${i}`))).block);
  await ipam.release('p4', 'eth0');
  clock.advance(GRACE);
  adv.startReclaim();
  timers.fn?.();
  for (let i = 0; i < 50 && store.snapshot().length > 1; i++) await new Promise((r) => setImmediate(r));
  t.equal(store.snapshot().length, 1, 'the empty block was given back');
});
