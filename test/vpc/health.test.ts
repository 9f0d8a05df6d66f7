// Forwarder health: misses before a failure, hysteresis before a recovery,
// node records (leases) counting too; and the TCP probe itself.
import t from 'tap';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { ForwarderHealth, tcpProbe, type Candidate } from '../../daemon/vpc/health.js';

const log = pino({ level: 'silent' });

function rig(opts: { misses?: number; recoverAfterMs?: number } = {}) {
  let now = 1_000_000;
  const up = new Map<string, boolean>();
  const health = new ForwarderHealth({
    intervalMs: 1000,
    misses: opts.misses ?? 2,
    recoverAfterMs: opts.recoverAfterMs ?? 5000,
    log,
    now: () => now,
    probe: async (endpoint) => up.get(endpoint) ?? false,
  });
  const changes: string[] = [];
  health.on('change', (node, healthy) => changes.push(`${node}:${healthy ? 'up' : 'down'}`));
  const round = async (advanceMs = 1000): Promise<void> => {
    now += advanceMs;
    await health.probeAll();
  };
  return { health, up, changes, round };
}

const cand = (name: string, endpoint = `198.18.1.${name.length}:9653`): Candidate => ({ name, instanceId: `i-${name}`, endpoint });

t.test('unjudged until the first probe; fails after `misses` misses; a flap never recovers early', async (t) => {
  const { health, up, changes, round } = rig();
  const a = cand('a', '198.18.1.10:9653');
  up.set(a.endpoint, true);
  health.setCandidates([a]);
  t.ok(health.hasUnjudged(), 'a new candidate is unjudged');
  t.notOk(health.healthy('a'), 'and not a forwarder yet');
  await round();
  t.ok(health.healthy('a'), 'healthy from its first answered probe');
  t.notOk(health.hasUnjudged());

  up.set(a.endpoint, false);
  await round();
  t.ok(health.healthy('a'), 'one miss is tolerated');
  await round();
  t.notOk(health.healthy('a'), 'failed after two misses');
  t.same(health.verdicts().map((v) => [v.node, v.healthy, v.consecutiveMisses]), [['a', false, 2]]);

  up.set(a.endpoint, true);
  for (let i = 0; i < 4; i++) await round();
  t.notOk(health.healthy('a'), 'answering for 4 s is not enough (recovery time 5 s)');
  up.set(a.endpoint, false);
  await round();
  up.set(a.endpoint, true);
  for (let i = 0; i < 5; i++) await round();
  t.notOk(health.healthy('a'), 'a miss in between restarts the recovery time');
  await round();
  t.ok(health.healthy('a'), 'healthy after answering for the whole recovery time');
  t.same(changes, ['a:up', 'a:down', 'a:up'], 'each verdict flips once: no flapping');
});

t.test('node records count: a vanished node is failed and comes back through recovery', async (t) => {
  const { health, up, changes, round } = rig({ recoverAfterMs: 2000 });
  const a = cand('a', '198.18.1.10:9653');
  const b = cand('bb', '198.18.1.11:9653');
  up.set(a.endpoint, true);
  up.set(b.endpoint, true);
  health.setCandidates([a, b]);
  await round();
  health.setCandidates([a]);
  t.notOk(health.healthy('bb'), 'no node record: failed at once');
  health.setCandidates([a, b]);
  await round();
  t.notOk(health.healthy('bb'), 'back with a record: still in recovery');
  await round();
  await round();
  t.ok(health.healthy('bb'), 'healthy after the recovery time');
  t.same(changes, ['a:up', 'bb:up', 'bb:down', 'bb:up']);
});

t.test('a node without a health endpoint is judged by its record alone; seeded failures keep hysteresis', async (t) => {
  const { health, up, round } = rig({ recoverAfterMs: 3000 });
  const quiet = cand('q', '');
  const c = cand('c', '198.18.1.12:9653');
  up.set(c.endpoint, true);
  health.seedFailed('c', 5);
  health.setCandidates([quiet, c]);
  t.ok(health.healthy('q'), 'no endpoint: healthy while its record lives');
  await round();
  t.notOk(health.healthy('c'), 'failed under the previous leader: not healthy at its first answer');
  await round();
  await round();
  await round();
  t.ok(health.healthy('c'), 'healthy once answering for the recovery time');
  t.equal(health.verdicts().find((v) => v.node === 'c')?.changedAt !== 5, true, 'the flip is dated');
});

t.test('a candidate that never answers fails after `misses` probes', async (t) => {
  const { health, round, changes } = rig({ misses: 3 });
  health.setCandidates([cand('d', '198.18.1.13:9653')]);
  await round();
  await round();
  t.ok(health.hasUnjudged(), 'still unjudged after two misses');
  await round();
  t.notOk(health.hasUnjudged());
  t.same(changes, ['d:down']);
});

t.test('tcpProbe: a listening port answers, a closed one does not', async (t) => {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  t.equal(await tcpProbe(`127.0.0.1:${port}`, 500), true, 'open port');
  await new Promise<void>((r) => server.close(() => r()));
  t.equal(await tcpProbe(`127.0.0.1:${port}`, 500), false, 'closed port');
  t.equal(await tcpProbe('not an endpoint', 500), false, 'malformed endpoint');
});
