// The three-member etcd of the lab: members on distinct ports with their own
// data, a leader found, and the member faults of lab/etcd-faults.ts (leader
// kill, member kill and restart, pause) leave a cluster that serves a client
// given every endpoint. Every member process is gone after destroy.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { startEtcdCluster } from '../../lab/etcd-cluster.js';
import { leaderKill, memberKillRestart, memberPause } from '../../lab/etcd-faults.js';
import { isAlive } from '../../lab/pids.js';

t.test('three members, faults, a client on every endpoint keeps working', async (t) => {
  const cluster = await startEtcdCluster(t);
  t.equal(new Set(cluster.endpoints).size, 3, 'distinct client ports');
  t.equal(new Set(cluster.members.map((m) => m.dataDir)).size, 3, 'own data directories');
  const pids = cluster.pids();
  t.ok(pids.every((p) => p > 0 && isAlive(p)), 'every member runs with a recorded PID');
  const client = new Etcd3({ hosts: cluster.endpoints });
  t.teardown(() => client.close());
  await client.put('/lab/k').value('0');

  const killed = await leaderKill(cluster);
  t.comment(JSON.stringify(killed));
  t.not(killed.leaderDuring, killed.member, 'another member led while the old leader was down');
  await client.put('/lab/k').value('1');
  t.equal(await client.get('/lab/k').string(), '1', 'writes go through after the leader was killed');

  const restarted = await memberKillRestart(cluster);
  t.comment(JSON.stringify(restarted));
  t.not(restarted.member, restarted.leaderBefore, 'a follower was killed');
  await client.put('/lab/k').value('2');
  t.equal(await client.get('/lab/k').string(), '2');

  const paused = await memberPause(cluster, (await cluster.waitLeader() + 1) % 3, 1_000);
  t.comment(JSON.stringify(paused));
  await client.put('/lab/k').value('3');
  t.equal(await client.get('/lab/k').string(), '3');

  const last = cluster.pids();
  await cluster.destroy();
  t.ok(last.every((p) => !isAlive(p)), 'every member is gone after destroy');
});
