// Tests of the throwaway-etcd helper: data survives stop/start on the same
// ports, stop/kill really end the PID, destroy removes everything, failures to
// start carry etcd's log, TLS demands a client certificate, compaction works.

import t from 'tap';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { execFile } from 'node:child_process';
import { startEtcd, type EtcdServer } from '../../lab/etcd.js';
import { isAlive } from '../../lab/pids.js';
import { Lab, needRoot } from '../../lab/netns.js';

function connectError(port: number, host = '127.0.0.1'): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

function rawEtcdctl(args: string[]): Promise<{ ok: boolean; stderr: string }> {
  return new Promise((resolve) => {
    execFile('etcdctl', ['--dial-timeout=1s', '--command-timeout=1s', ...args],
      { env: { ...process.env, ETCDCTL_API: '3' } },
      (err, _stdout, stderr) => resolve({ ok: err === null, stderr }));
  });
}

t.test('put/get, stop refuses connections, start keeps the data', async (t) => {
  const etcd = await startEtcd(t);
  t.match(etcd.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.ok(isAlive(etcd.pid), 'etcd PID is alive');
  t.ok(existsSync(etcd.dataDir), 'data dir exists');

  await etcd.etcdctl(['put', '/trellis/test/k', 'v1']);
  t.equal((await etcd.etcdctl(['get', '--print-value-only', '/trellis/test/k'])).trim(), 'v1');

  const firstPid = etcd.pid;
  await etcd.stop();
  t.notOk(etcd.running, 'not running after stop');
  t.notOk(isAlive(firstPid), 'PID gone after stop');
  t.equal(await connectError(etcd.clientPort), 'ECONNREFUSED', 'client port refuses connections');
  await t.rejects(etcd.etcdctl(['get', '/trellis/test/k'], { timeoutMs: 1_000, dialTimeoutMs: 500 }),
    /refused|deadline|unavailable/i, 'etcdctl fails while stopped');

  await etcd.start();
  t.ok(etcd.running, 'running again');
  t.not(etcd.pid, firstPid, 'a new process');
  t.equal(etcd.endpoint, `http://127.0.0.1:${etcd.clientPort}`, 'same endpoint');
  t.equal((await etcd.etcdctl(['get', '--print-value-only', '/trellis/test/k'])).trim(), 'v1',
    'the key survived the restart');

  const beforeKill = etcd.pid;
  await etcd.kill();
  t.notOk(isAlive(beforeKill), 'PID gone after kill');
  await etcd.start();
  t.equal((await etcd.etcdctl(['get', '--print-value-only', '/trellis/test/k'])).trim(), 'v1',
    'the key survived SIGKILL');

  const pid = etcd.pid;
  const dir = etcd.dataDir;
  await etcd.destroy();
  t.notOk(isAlive(pid), 'PID gone after destroy');
  t.notOk(existsSync(dir), 'data dir removed by destroy');
  await t.rejects(etcd.start(), /after destroy/, 'cannot start a destroyed server');
});

t.test('compact discards old revisions', async (t) => {
  const etcd = await startEtcd(t);
  await etcd.etcdctl(['put', 'k', 'a']);
  const first = await etcd.revision();
  await etcd.etcdctl(['put', 'k', 'b']);
  await etcd.etcdctl(['put', 'k', 'c']);
  t.equal((await etcd.etcdctl(['get', '--print-value-only', `--rev=${first}`, 'k'])).trim(), 'a',
    'old revision readable before compaction');
  const compacted = await etcd.compact();
  t.equal(compacted, first + 2, 'compacts at the current revision');
  await t.rejects(etcd.etcdctl(['get', `--rev=${first}`, 'k']), /compacted/, 'old revision gone');
  t.equal((await etcd.etcdctl(['get', '--print-value-only', 'k'])).trim(), 'c');
});

t.test('teardown of the test destroys the server', async (t) => {
  let server: EtcdServer | undefined;
  await t.test('owner', async (st) => {
    server = await startEtcd(st);
    st.ok(isAlive(server.pid));
  });
  t.ok(server, 'server was started');
  if (server === undefined) return;
  t.notOk(isAlive(server.pid), 'PID gone after the subtest ended');
  t.notOk(existsSync(server.dataDir), 'data dir gone after the subtest ended');
});

t.test('a start failure reports etcd\'s log and leaves nothing behind', async (t) => {
  const err = await startEtcd(t, { extraArgs: ['--no-such-flag-for-etcd'], startTimeoutMs: 10_000 })
    .then(() => undefined, (e: unknown) => e);
  t.type(err, Error);
  t.match((err as Error).message, /etcd exited during start/);
  t.match((err as Error).message, /no-such-flag-for-etcd/, 'log tail included');
  const dir = /log (\S+)\/etcd\.log/.exec((err as Error).message)?.[1];
  t.ok(dir, 'names the log file');
  if (dir !== undefined) t.notOk(existsSync(dir), 'temp dir removed');
});

t.test('tls: client certificate required', async (t) => {
  const etcd = await startEtcd(t, { tls: true });
  t.match(etcd.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.ok(etcd.tls, 'exposes client TLS files');
  const tls = etcd.tls!;
  for (const f of [tls.ca, tls.cert, tls.key]) t.ok(existsSync(f), `${f} exists`);

  await etcd.etcdctl(['put', 'secure', 'yes']);
  t.equal((await etcd.etcdctl(['get', '--print-value-only', 'secure'])).trim(), 'yes',
    'etcdctl with the client certificate works');

  const noCert = await rawEtcdctl([`--endpoints=${etcd.endpoint}`, `--cacert=${tls.ca}`, 'get', 'secure']);
  t.notOk(noCert.ok, 'without a client certificate the request fails');
  const plain = await rawEtcdctl([`--endpoints=http://127.0.0.1:${etcd.clientPort}`, 'get', 'secure']);
  t.notOk(plain.ok, 'plain http fails');

  const opts = etcd.clientOptions();
  t.same(opts.hosts, [etcd.endpoint]);
  t.match(opts.credentials?.certChain.toString(), /BEGIN CERTIFICATE/);

  await etcd.stop();
  await etcd.start();
  t.equal((await etcd.etcdctl(['get', '--print-value-only', 'secure'])).trim(), 'yes', 'TLS restart works');
});

t.test('inside a network namespace', { skip: needRoot() }, async (t) => {
  const lab = new Lab(t);
  const a = await lab.ns('etcd');
  const b = await lab.ns('client');
  await lab.veth(a, 'eth0', b, 'eth0');
  await lab.addr(a, 'eth0', '198.18.7.1/24');
  await lab.addr(b, 'eth0', '198.18.7.2/24');
  const etcd = await startEtcd(t, { netns: a.name, host: '198.18.7.1' });
  await etcd.etcdctl(['put', 'where', 'netns']);
  const out = await lab.exec(b, 'etcdctl', [`--endpoints=${etcd.endpoint}`, 'get', '--print-value-only', 'where'],
    { env: { ETCDCTL_API: '3' } });
  t.equal(out.trim(), 'netns', 'reachable from another namespace over the veth');
  t.not(await connectError(etcd.clientPort), undefined, 'not reachable on the host loopback');
});
