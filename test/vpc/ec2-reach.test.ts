// EC2 reachability as the advertiser's own calls see it: unanswered attempts
// for the bound make EC2 unreachable, refusals are answers, an answered probe
// makes it reachable again.
import t from 'tap';
import { pino } from 'pino';
import { Ec2Reach } from '../../daemon/vpc/ec2-reach.js';

const log = pino({ level: 'silent' });

function rig() {
  let now = 1_000_000;
  let answers = false;
  let probes = 0;
  const reach = new Ec2Reach({
    unreachableAfterMs: 10_000,
    probeIntervalMs: 5000,
    log,
    now: () => now,
    probe: async () => {
      probes++;
      return answers;
    },
  });
  const changes: boolean[] = [];
  reach.on('change', (ok) => changes.push(ok));
  return { reach, changes, advance: (ms: number) => (now += ms), setAnswers: (a: boolean) => (answers = a), probes: () => probes };
}

t.test('unanswered attempts for the bound make EC2 unreachable; not before', async (t) => {
  const { reach, changes, advance } = rig();
  reach.answered(false);
  advance(9_999);
  reach.answered(false);
  reach.check();
  t.ok(reach.reachable, 'still reachable just before the bound');
  advance(1);
  reach.check();
  t.notOk(reach.reachable, 'unreachable at the bound');
  t.same(changes, [false], 'one change');
});

t.test('an answer in between restarts the count; refusals are answers', async (t) => {
  const { reach, advance } = rig();
  for (let i = 0; i < 10; i++) {
    reach.answered(false);
    advance(3000);
    reach.answered(true); // e.g. RequestLimitExceeded: EC2 answered
    advance(3000);
    reach.check();
  }
  t.ok(reach.reachable, 'a storm of refusals never makes EC2 unreachable');
});

t.test('no attempt, no change; while unreachable, probes every interval until one is answered', async (t) => {
  const { reach, changes, advance, setAnswers, probes } = rig();
  advance(60_000);
  reach.check();
  t.ok(reach.reachable, 'an idle node keeps its verdict');
  reach.answered(false);
  advance(10_000);
  reach.check();
  await reach.settled();
  t.equal(probes(), 1, 'probed once unreachable');
  advance(1000);
  reach.check();
  await reach.settled();
  t.equal(probes(), 1, 'not before the probe interval');
  advance(4000);
  setAnswers(true);
  reach.check();
  await reach.settled();
  t.equal(probes(), 2, 'probed again after the interval');
  t.ok(reach.reachable, 'reachable at the first answered probe');
  t.same(changes, [false, true]);
});
