// The shared backoff schedule and retry helper, checked against the numbers
// each retry loop used before it moved onto them.

import t from 'tap';
import { Backoff, backoffDelay, type BackoffPolicy } from '../../src/core/backoff.js';
import { retryUntil } from '../../src/retry.js';

const schedule = (policy: BackoffPolicy, n: number, random?: () => number): number[] => {
  const b = new Backoff(policy, random);
  return Array.from({ length: n }, () => b.next());
};

t.test('capped doubling from the initial delay', async (t) => {
  t.same(schedule({ initialMs: 250, maxMs: 5000 }, 7), [250, 500, 1000, 2000, 4000, 5000, 5000], 'etcd wait and publisher');
  t.same(schedule({ initialMs: 200, maxMs: 5000 }, 7), [200, 400, 800, 1600, 3200, 5000, 5000], 'mirror relist');
  t.same(schedule({ initialMs: 100, maxMs: 5000 }, 8), [100, 200, 400, 800, 1600, 3200, 5000, 5000], 'route watch restart');
  t.same(schedule({ initialMs: 1000, maxMs: 30_000 }, 6), [1000, 2000, 4000, 8000, 16_000, 30_000], 'VPC advertiser');
  t.same(schedule({ initialMs: 1000, maxMs: 500 }, 2), [500, 500], 'a cap below the initial delay wins');
});

t.test('the route agent schedule equals its former formula', async (t) => {
  const b = new Backoff({ initialMs: 200, maxMs: 10_000 });
  for (let failures = 1; failures <= 40; failures++) {
    t.equal(b.next(), Math.min(100 * 2 ** Math.min(failures, 8), 10_000), `failure ${failures}`);
  }
});

t.test('full jitter scales the ceiling by the random draw', async (t) => {
  const policy: BackoffPolicy = { initialMs: 200, maxMs: 5000, jitter: 'full' };
  for (let attempt = 1; attempt <= 10; attempt++) {
    const ceiling = Math.min(5000, 200 * 2 ** (attempt - 1));
    t.equal(backoffDelay(policy, attempt, () => 0.5), Math.round(0.5 * ceiling), `attempt ${attempt} (EC2 formula)`);
    t.equal(backoffDelay(policy, attempt, () => 0), 0);
  }
  t.equal(backoffDelay({ initialMs: 10, maxMs: 100, factor: 3 }, 3), 90, 'another factor');
  t.equal(backoffDelay({ initialMs: 10, maxMs: 100 }, 10_000), 100, 'many failures stay at the cap');
});

t.test('reset and peek', async (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000 });
  t.equal(b.peek(), 100);
  b.next();
  b.next();
  t.equal(b.attempts, 2);
  t.equal(b.peek(), 400, 'peek shows the next delay');
  t.equal(b.attempts, 2, 'without counting it');
  b.reset();
  t.equal(b.next(), 100, 'after a reset the first delay again');
});

t.test('retryUntil waits by the policy between failures', async (t) => {
  const waits: number[] = [];
  const errors: Array<[string, number, number]> = [];
  let calls = 0;
  const out = await retryUntil(
    async (attempt) => {
      calls++;
      t.equal(attempt, calls, 'attempt numbers count up from 1');
      if (calls < 4) throw new Error(`fail ${calls}`);
      return 'done';
    },
    {
      policy: { initialMs: 250, maxMs: 1000 },
      sleep: async (ms) => void waits.push(ms),
      onError: (err, delay, attempt) => errors.push([(err as Error).message, delay, attempt]),
    },
  );
  t.equal(out, 'done');
  t.same(waits, [250, 500, 1000]);
  t.same(errors, [['fail 1', 250, 1], ['fail 2', 500, 2], ['fail 3', 1000, 3]]);
});

t.test('retryUntil ends when stopped, and throws what is not retryable', async (t) => {
  let stopped = false;
  let calls = 0;
  const out = await retryUntil(
    async () => {
      calls++;
      throw new Error('down');
    },
    { policy: { initialMs: 1, maxMs: 1 }, stopped: () => stopped, sleep: async () => void (stopped = calls >= 2) },
  );
  t.equal(out, undefined);
  t.equal(calls, 2, 'no try after stop');
  await t.rejects(
    retryUntil(async () => { throw new Error('fatal'); }, { policy: { initialMs: 1, maxMs: 1 }, retryable: () => false, sleep: async () => void t.fail('no wait') }),
    { message: 'fatal' },
  );
});
