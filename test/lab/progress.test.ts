// lab/progress.ts: bounded parallel starts and progress-based waits.
import t from 'tap';
import { startBounded, waitProgress } from '../../lab/progress.js';

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

t.test('startBounded keeps at most `parallel` starts in flight and runs them all', async (t) => {
  let inFlight = 0;
  let most = 0;
  const started: string[] = [];
  const items = Array.from({ length: 10 }, (_, i) => ({
    name: `h${i}`,
    start: async () => {
      started.push(`h${i}`);
      most = Math.max(most, ++inFlight);
      await tick();
      inFlight--;
    },
  }));
  await startBounded(items, 3);
  t.equal(most, 3);
  t.same(started, items.map((i) => i.name));
});

t.test('startBounded names the hosts that failed and those it did not start', async (t) => {
  const started: string[] = [];
  const items = Array.from({ length: 6 }, (_, i) => ({
    name: `h${i}`,
    start: async () => {
      started.push(`h${i}`);
      await tick();
      if (i === 1) throw new Error('no "cluster view synced" in 30000 ms');
    },
  }));
  await t.rejects(startBounded(items, 2, 'synced'), /not synced on 1 of 6 host\(s\): h1; not started after that: h3, h4, h5\nfirst failure \(h1\): no "cluster view synced"/);
  t.same(started, ['h0', 'h1', 'h2'], 'no new start after the failure');
});

t.test('waitProgress resolves once nothing is outstanding, while the list keeps changing', async (t) => {
  let left = ['a', 'b', 'c'];
  const ms = await waitProgress('letters', () => (left = left.slice(1)), { stallMs: 1000, pollMs: 1 });
  t.ok(ms >= 0);
  t.same(left, []);
});

t.test('waitProgress fails when nothing progresses, naming what is missing', async (t) => {
  const items = Array.from({ length: 25 }, (_, i) => `route table rtb-${i}: no entry covers 100.96.0.0/26`);
  await t.rejects(
    waitProgress('convergence', () => items, { stallMs: 20, pollMs: 5, show: 3 }),
    /timed out waiting for convergence \(no progress for 0 s, \d+ s in all\); still missing 25:\n  route table rtb-0: no entry covers 100\.96\.0\.0\/26\n  route table rtb-1.*\n  route table rtb-2.*\n  … and 22 more/,
  );
});
