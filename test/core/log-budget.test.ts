// The log line budget: a burst, then a steady rate; refused lines are counted
// and reported with the next line allowed.
import t from 'tap';
import { LogBudget } from '../../src/core/log-budget.js';

t.test('a flood costs burst + rate × time lines', async (t) => {
  let now = 0;
  const budget = new LogBudget({ burst: 3, perSecond: 2, now: () => now });
  const allowed: Array<number | undefined> = [];
  for (let i = 0; i < 4096; i++) allowed.push(budget.take());
  t.same(allowed.slice(0, 3), [0, 0, 0], 'the burst');
  t.equal(allowed.filter((a) => a !== undefined).length, 3, 'then nothing while no time passes');
  now = 1000;
  t.equal(budget.take(), 4093, 'the next line allowed reports how many were left out');
  t.equal(budget.take(), 0);
  t.equal(budget.take(), undefined, 'two a second');
  now = 100_000;
  let burst = 0;
  while (budget.take() !== undefined) burst++;
  t.equal(burst, 3, 'an idle budget refills up to the burst only');
});
