// The publisher in process, over a fake etcd put and a fake lease: what is
// written under which lease, repairs, lease changes and retry after failure.

import t from 'tap';
import { EventEmitter } from 'node:events';
import pino from 'pino';
import type { LeaseState } from '../../src/etcd/lease-keeper.js';
import { AdvertisementSchema, NodeSchema } from '../../src/gen/trellis/v1/records_pb.js';
import { encodeRecord, makeRecord } from '../../src/state/records.js';
import { Publisher, type PublisherClient, type PublisherLease } from '../../daemon/publisher.js';

const log = pino({ level: 'silent' });

class FakeLease extends EventEmitter implements PublisherLease {
  id: string | undefined = '100';
  state: LeaseState = 'alive';
  grant(id: string): void {
    this.id = id;
    this.state = 'alive';
    this.emit('granted');
  }
}

interface Put {
  key: string;
  value: string;
  lease: string;
}

class FakeEtcd implements PublisherClient {
  puts: Put[] = [];
  /** Puts still to fail. */
  failures = 0;
  private waiters: Array<{ n: number; resolve: () => void }> = [];
  put(key: string) {
    return {
      value: (value: string) => ({
        lease: (lease: string) => ({
          exec: async (): Promise<unknown> => {
            await Promise.resolve();
            if (this.failures > 0) {
              this.failures--;
              throw new Error('etcd unavailable');
            }
            this.puts.push({ key, value, lease });
            this.waiters = this.waiters.filter((w) => (this.puts.length >= w.n ? (w.resolve(), false) : true));
            return {};
          },
        }),
      }),
    };
  }
  /** Resolves once `n` puts have succeeded in all. */
  until(n: number): Promise<void> {
    if (this.puts.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
}

const node = (name: string) => makeRecord(NodeSchema, { name, subnet: 'subnet-a', hostIp: '198.18.0.10' });
const advert = (prefixes: string[]) => makeRecord(AdvertisementSchema, { node: 'n1', subnet: 'subnet-a', nextHop: '198.18.0.10', prefixes });
const NODE_KEY = '/trellis/v1/nodes/n1';
const ROUTE_KEY = '/trellis/v1/routes/subnet-a/n1';

function fixture() {
  const etcd = new FakeEtcd();
  const lease = new FakeLease();
  const publisher = new Publisher(etcd, lease, log);
  t.teardown(() => publisher.stop());
  return { etcd, lease, publisher };
}

t.test('both records are written under the lease; an unchanged one is not rewritten', async (t) => {
  const { etcd, publisher } = fixture();
  publisher.setNode(NODE_KEY, node('n1'));
  publisher.setAdvertisement(ROUTE_KEY, advert(['100.64.0.0/26']));
  t.equal(await publisher.flush(), true);
  t.same(etcd.puts, [
    { key: NODE_KEY, value: encodeRecord(NodeSchema, node('n1')), lease: '100' },
    { key: ROUTE_KEY, value: encodeRecord(AdvertisementSchema, advert(['100.64.0.0/26'])), lease: '100' },
  ]);
  t.equal(publisher.puts, 2);
  publisher.setAdvertisement(ROUTE_KEY, advert(['100.64.0.0/26']));
  await publisher.flush();
  t.equal(etcd.puts.length, 2, 'same advertisement: no put');
  publisher.setAdvertisement(ROUTE_KEY, advert(['100.64.0.0/25']));
  await publisher.flush();
  t.same(etcd.puts.slice(2).map((p) => p.key), [ROUTE_KEY], 'a changed advertisement: only it is put');
  t.ok(publisher.isCurrent());
});

t.test('verify puts back a record changed or deleted by someone else', async (t) => {
  const { etcd, publisher } = fixture();
  publisher.setNode(NODE_KEY, node('n1'));
  await publisher.flush();
  const mine = encodeRecord(NodeSchema, node('n1'));
  publisher.verify(NODE_KEY, { value: mine, lease: '100' });
  await publisher.flush();
  t.equal(etcd.puts.length, 1, 'what etcd holds is ours: nothing to do');
  publisher.verify(NODE_KEY, undefined);
  await publisher.flush();
  t.equal(etcd.puts.length, 2, 'deleted: put back');
  publisher.verify(NODE_KEY, { value: encodeRecord(NodeSchema, node('other')), lease: '100' });
  await publisher.flush();
  t.equal(etcd.puts.length, 3, 'overwritten: put back');
  publisher.verify(NODE_KEY, { value: mine, lease: '999' });
  await publisher.flush();
  t.equal(etcd.puts.length, 4, 'under another lease: put back');
  publisher.verify('/trellis/v1/nodes/n2', undefined);
  await publisher.flush();
  t.equal(etcd.puts.length, 4, 'a key that is not ours is left alone');
});

t.test('nothing is written without a live lease; a new lease gets everything again', async (t) => {
  const { etcd, lease, publisher } = fixture();
  lease.id = undefined;
  lease.state = 'pending';
  publisher.setNode(NODE_KEY, node('n1'));
  publisher.setAdvertisement(ROUTE_KEY, advert(['100.64.0.0/26']));
  t.equal(await publisher.flush(), false, 'not current');
  t.same(etcd.puts, []);
  lease.grant('200');
  await publisher.flush();
  t.same(etcd.puts.map((p) => `${p.key}@${p.lease}`), [`${NODE_KEY}@200`, `${ROUTE_KEY}@200`]);
  lease.state = 'lost';
  publisher.setAdvertisement(ROUTE_KEY, advert(['100.64.0.0/25']));
  t.equal(await publisher.flush(), false, 'the change waits for a live lease');
  t.equal(etcd.puts.length, 2, 'nothing is put under a lost lease');
  lease.grant('300');
  await publisher.flush();
  t.same(etcd.puts.slice(2).map((p) => `${p.key}@${p.lease}`), [`${NODE_KEY}@300`, `${ROUTE_KEY}@300`], 'both re-put under the new lease');
  t.ok(publisher.isCurrent());
});

t.test('a failed put is retried by itself', async (t) => {
  const { etcd, publisher } = fixture();
  etcd.failures = 3;
  publisher.setNode(NODE_KEY, node('n1'));
  t.equal(await publisher.flush(), false, 'the round failed');
  t.ok(publisher.failures >= 1);
  t.notOk(publisher.isCurrent());
  await etcd.until(1);
  t.equal(await publisher.flush(), true, 'written');
  t.equal(etcd.failures, 0, 'every failure was retried');
  t.equal(publisher.failures, 3, 'each failed put counted as a failed round; then success, with no call from outside');
  t.same(etcd.puts.map((p) => p.key), [NODE_KEY]);
  t.ok(publisher.isCurrent());
});

t.test('stop ends retries', async (t) => {
  const { etcd, publisher } = fixture();
  etcd.failures = 100;
  publisher.setNode(NODE_KEY, node('n1'));
  t.equal(await publisher.flush(), false);
  publisher.stop();
  etcd.failures = 0;
  publisher.setAdvertisement(ROUTE_KEY, advert(['100.64.0.0/26']));
  t.equal(await publisher.flush(), false);
  t.same(etcd.puts, [], 'nothing written after stop');
});

t.test('after a new lease, node record and advertisement go in one transaction when the client can', async (t) => {
  const batches: string[][] = [];
  class BatchEtcd extends FakeEtcd {
    async putAll(writes: ReadonlyArray<Put>): Promise<unknown> {
      batches.push(writes.map((w) => `${w.key}@${w.lease}`));
      return {};
    }
  }
  const etcd = new BatchEtcd();
  const lease = new FakeLease();
  const publisher = new Publisher(etcd, lease, log);
  t.teardown(() => publisher.stop());
  publisher.batch(() => {
    publisher.setNode(NODE_KEY, node('n1'));
    publisher.setAdvertisement(ROUTE_KEY, advert(['100.64.0.0/26']));
  });
  await publisher.flush();
  t.same(batches, [[`${NODE_KEY}@100`, `${ROUTE_KEY}@100`]], 'a batch is one transaction');
  t.same(etcd.puts, [], 'no single put');
  lease.grant('300');
  await publisher.flush();
  t.same(batches.at(-1), [`${NODE_KEY}@300`, `${ROUTE_KEY}@300`], 'never one under the new lease and the other under the old');
  publisher.setAdvertisement(ROUTE_KEY, advert(['100.64.0.0/25']));
  await publisher.flush();
  t.same(etcd.puts.map((p) => `${p.key}@${p.lease}`).at(-1), `${ROUTE_KEY}@300`, 'a single change is a plain put');
  t.ok(publisher.isCurrent());
});
