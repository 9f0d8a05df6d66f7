// The mass-withdrawal damping policy (pure): single withdrawals take effect
// after the counting window, a mass event is held for its grace, a node that
// comes back is released, and nothing is held longer than the rule says.
import t from 'tap';
import fc from 'fast-check';
import { WithdrawDamping, type DampingPolicy } from '../../src/core/withdraw-damping.js';

const policy: DampingPolicy = { windowMs: 300, massShare: 0.5, massMin: 2, graceMs: 10_000 };

t.test('a single withdrawal is held only for the window', async (t) => {
  const d = new WithdrawDamping<string>(policy);
  t.equal(d.vanish('n1', 'a1', 1000, 9), undefined, 'not a mass event');
  t.same([...d.held()], [['n1', 'a1']], 'held while counted');
  t.equal(d.nextDue(), 1300);
  t.same(d.due(1299), []);
  t.same(d.due(1300), ['n1'], 'withdrawn once the window passed');
  t.same([...d.held()], []);
  t.equal(d.nextDue(), undefined);
});

t.test('half the cluster vanishing at once is held for the grace; nodes that re-register are released', async (t) => {
  const d = new WithdrawDamping<string>(policy);
  const known = 6;
  t.equal(d.vanish('n1', 'a1', 1000, known), undefined);
  t.equal(d.vanish('n2', 'a2', 1010, known), undefined);
  t.same(d.vanish('n3', 'a3', 1020, known), { withdrawn: 3, known: 6, until: 11_000 }, 'the third of six makes it a mass event');
  t.equal(d.vanish('n4', 'a4', 1030, known), undefined, 'declared once');
  t.same(d.due(5000), [], 'nothing withdrawn during the grace, not even the first');
  t.ok(d.back('n1') && d.back('n2') && d.back('n4'), 'three re-register');
  t.same(d.due(10_999), []);
  t.same(d.due(11_000), ['n3'], 'the one that never came back is withdrawn at the end of the grace');
});

t.test('a withdrawal after a mass event was declared joins it, bounded by the same end', async (t) => {
  const d = new WithdrawDamping<string>(policy);
  d.vanish('n1', 'a1', 0, 4);
  d.vanish('n2', 'a2', 10, 4);
  d.vanish('n3', 'a3', 2000, 4);
  t.equal(d.nextDue(), 10_000, 'held to the event end, not 2000 + grace');
  t.same(d.due(10_000), ['n1', 'n2', 'n3']);
  t.equal(d.vanish('n4', 'a4', 10_001, 4), undefined, 'after the end a new event starts');
  t.equal(d.nextDue(), 10_301);
});

t.test('once every node of a mass event is back, a death is judged on its own again', async (t) => {
  const d = new WithdrawDamping<string>(policy);
  d.vanish('n1', 'a1', 0, 3);
  t.ok(d.vanish('n2', 'a2', 5, 3), 'mass');
  d.back('n1');
  t.equal(d.vanish('n3', 'a3', 2000, 3), undefined, 'while n2 is still held, n3 joins the event');
  t.equal(d.nextDue(), 10_000);
  d.back('n2');
  d.back('n3');
  d.vanish('n3', 'a3', 3000, 3);
  t.equal(d.nextDue(), 3300, 'after all came back, a single death waits only for the window');
});

t.test('withdrawals spread wider than the window are separate single events', async (t) => {
  const d = new WithdrawDamping<string>(policy);
  d.vanish('n1', 'a1', 0, 4);
  t.same(d.due(300), ['n1']);
  d.vanish('n2', 'a2', 400, 4);
  t.equal(d.nextDue(), 700, 'n2 alone, not a mass event with n1');
});

t.test('a small share is no mass event, however many', async (t) => {
  const d = new WithdrawDamping<string>(policy);
  for (let i = 0; i < 4; i++) t.equal(d.vanish(`n${i}`, 'a', i, 100), undefined);
  t.same(d.due(303), ['n0', 'n1', 'n2', 'n3']);
});

t.test('grace 0 never declares a mass event', async (t) => {
  const d = new WithdrawDamping<string>({ ...policy, graceMs: 0 });
  t.equal(d.enabled, false);
  t.equal(d.vanish('n1', 'a', 0, 2), undefined);
  t.equal(d.vanish('n2', 'a', 1, 2), undefined);
  t.same(d.due(301), ['n1', 'n2']);
});

t.test('property: nothing is held past its bound, and every withdrawal is eventually due', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ node: fc.integer({ min: 0, max: 9 }), dt: fc.integer({ min: 0, max: 2000 }), back: fc.boolean() }), { maxLength: 60 }),
      (steps) => {
        const d = new WithdrawDamping<number>(policy);
        let now = 0;
        const since = new Map<number, number>();
        for (const s of steps) {
          now += s.dt;
          for (const n of d.due(now)) since.delete(Number(n.slice(1)));
          if (s.back) {
            d.back(`n${s.node}`);
            since.delete(s.node);
          } else {
            d.vanish(`n${s.node}`, s.node, now, 10);
            if (!since.has(s.node)) since.set(s.node, now);
          }
          const next = d.nextDue();
          if (next !== undefined && next > now + policy.graceMs) return false;
        }
        for (const [node, at] of since) if (d.isHeld(`n${node}`) && (d.nextDue() ?? 0) > at + policy.graceMs + policy.windowMs) return false;
        d.due(now + policy.graceMs + policy.windowMs);
        return d.held().size === 0;
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('held withdrawals are bounded and all come due');
});
