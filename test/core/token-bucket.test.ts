// The token bucket on a fake clock: burst, refill, waiting time, draining
// after a refused call, and the bound on admitted calls over any interval.
import t from 'tap';
import fc from 'fast-check';
import { EC2_DESCRIBE_BUCKET, EC2_MUTATE_BUCKET, TokenBucket } from '../../src/core/token-bucket.js';
import { ErrorCode } from '../../src/errors.js';

t.test("EC2's documented buckets", async (t) => {
  t.same(EC2_MUTATE_BUCKET, { burst: 50, refillPerSecond: 5 });
  t.same(EC2_DESCRIBE_BUCKET, { burst: 100, refillPerSecond: 20 });
});

t.test('burst, then one call per refill period', async (t) => {
  let now = 1000;
  const b = new TokenBucket({ burst: 50, refillPerSecond: 5 }, () => now);
  let admitted = 0;
  while (b.tryTake()) admitted++;
  t.equal(admitted, 50, 'a full bucket lets 50 calls through at once');
  t.equal(b.waitMs(), 200, 'the next token in 200 ms');
  now += 199;
  t.notOk(b.tryTake(), 'not before');
  now += 1;
  t.ok(b.tryTake(), 'then one');
  t.notOk(b.tryTake());
  now += 60_000;
  t.equal(b.available(), 50, 'never above the burst');
});

t.test('drain: a refused call empties the bucket, refill starts from then', async (t) => {
  let now = 0;
  const b = new TokenBucket({ burst: 100, refillPerSecond: 20 }, () => now);
  b.drain();
  t.equal(b.available(), 0);
  t.equal(b.waitMs(), 50);
  now += 50;
  t.ok(b.tryTake());
});

t.test('a clock going backwards adds nothing', async (t) => {
  let now = 10_000;
  const b = new TokenBucket({ burst: 2, refillPerSecond: 1 }, () => now);
  t.ok(b.tryTake());
  t.ok(b.tryTake());
  now -= 5000;
  t.notOk(b.tryTake());
  now += 5000;
  t.notOk(b.tryTake(), 'time already counted is not counted again');
  now += 1000;
  t.ok(b.tryTake());
});

t.test('skipSince: no refill counted while a call is in flight; the client never counts more than the server', async (t) => {
  let now = 0;
  const b = new TokenBucket({ burst: 1, refillPerSecond: 5 }, () => now);
  t.ok(b.tryTake());
  now = 150;
  b.skipSince(0);
  now = 349;
  t.notOk(b.tryTake(), 'the 150 ms in flight gave nothing: the token is there 200 ms after the answer, not before');
  now = 350;
  t.ok(b.tryTake(), 'and then');
  // Any latencies: a server bucket taking at arrival (between send and answer) always has the client's token.
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 })), { minLength: 1, maxLength: 200 }), (calls) => {
      let clock = 0;
      const client = new TokenBucket({ burst: 5, refillPerSecond: 5 }, () => clock);
      let serverClock = 0;
      const server = new TokenBucket({ burst: 5, refillPerSecond: 5 }, () => serverClock);
      for (const [gap, toArrival, toAnswer] of calls) {
        clock += gap;
        while (!client.tryTake()) clock += client.waitMs();
        const sent = clock;
        serverClock = sent + toArrival;
        if (!server.tryTake()) return false;
        clock = serverClock + toAnswer;
        client.skipSince(sent);
      }
      return true;
    }),
    { numRuns: 300 },
  );
});

t.test('bad settings are refused', async (t) => {
  t.throws(() => new TokenBucket({ burst: 0, refillPerSecond: 5 }, () => 0), { code: ErrorCode.Config });
  t.throws(() => new TokenBucket({ burst: 5, refillPerSecond: 0 }, () => 0), { code: ErrorCode.Config });
});

t.test('property: over any interval, at most burst + floor(d · rate) calls are admitted', async () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 60 }),
      fc.integer({ min: 1, max: 30 }),
      fc.array(fc.integer({ min: 0, max: 700 }), { minLength: 1, maxLength: 300 }),
      (burst, rate, gaps) => {
        let now = 0;
        const b = new TokenBucket({ burst, refillPerSecond: rate }, () => now);
        const times: number[] = [];
        for (const gap of gaps) {
          now += gap;
          while (b.tryTake()) times.push(now);
        }
        for (let i = 0; i < times.length; i++) {
          for (let j = i; j < times.length; j++) {
            const d = (times[j] as number) - (times[i] as number);
            if (j - i + 1 > burst + Math.floor((d / 1000) * rate + 1e-9)) return false;
          }
        }
        return true;
      },
    ),
    { numRuns: 200 },
  );
});
