// The in-flight limiter: never more than `max` tasks at once, FIFO, slots
// released on failure too.

import t from 'tap';
import { Limiter } from '../../src/netlink/limiter.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('bounds concurrency and keeps order', async (t) => {
  const limiter = new Limiter(3);
  let running = 0;
  let highest = 0;
  const started: number[] = [];
  const tasks = Array.from({ length: 20 }, (_, i) =>
    limiter.run(async () => {
      started.push(i);
      running++;
      highest = Math.max(highest, running);
      for (let k = 0; k < (i % 4) + 1; k++) await tick();
      running--;
      if (i === 5) throw new Error('task 5 fails');
      return i;
    }),
  );
  const results = await Promise.allSettled(tasks);
  t.equal(highest, 3, 'three at once, never more');
  t.equal(limiter.peak, 3);
  t.equal(limiter.active, 0, 'all slots released');
  t.same(started, [...started].sort((a, b) => a - b), 'FIFO');
  t.equal(results.filter((r) => r.status === 'rejected').length, 1, 'a failure frees its slot');
  t.same(results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<number>).value).length, 19);
});

t.test('rejects a bad size', async (t) => {
  t.throws(() => new Limiter(0), RangeError);
  t.throws(() => new Limiter(1.5), RangeError);
});
