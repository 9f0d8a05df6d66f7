// What the user reads when etcd cannot be reached: the endpoint and what to
// check, never the client library's own wording (the circuit breaker's
// "Execution prevented …", gRPC's status dump). Uses a real client against a
// closed loopback port, so the breaker really opens.
import t from 'tap';
import { checkEtcd, connectEtcd, explainEtcdError, isEtcdClientError } from '../../src/etcd/client.js';
import { describeCommandError } from '../../src/cli/etcd-options.js';
import { describeError, ErrorCode, TrellisError } from '../../src/errors.js';
import { freePorts } from '../../lab/ports.js';

t.test('an open circuit breaker is explained with the endpoint', async (t) => {
  const [port] = await freePorts(1);
  const settings = { endpoints: [`http://127.0.0.1:${port}`], requestTimeoutMs: 1000 };
  const client = connectEtcd(settings);
  t.teardown(() => client.close());
  const messages: string[] = [];
  const raw: unknown[] = [];
  for (let i = 0; i < 3; i++) {
    try {
      await client.get('/probe').exec();
    } catch (err) {
      raw.push(err);
    }
    try {
      await checkEtcd(client, settings, '/probe');
    } catch (err) {
      messages.push((err as Error).message);
    }
  }
  t.equal(messages.length, 3);
  t.ok(raw.some((e) => /circuit breaker is open/.test(String((e as Error).message))), 'the breaker did open (the library wording exists)');
  t.ok(raw.every((e) => isEtcdClientError(e)), 'errors of the client are recognised');
  for (const m of messages) {
    t.match(m, `cannot reach etcd at http://127.0.0.1:${port}: `);
    t.notMatch(m, /Execution prevented|circuit breaker|UNAVAILABLE|No connection established/);
    t.match(m, /\(is etcd running and reachable at /);
  }
  const broken = raw.find((e) => /circuit breaker/.test(String((e as Error).message)));
  t.match(explainEtcdError(broken, settings).message, /no answer \(its last requests failed, so the client stopped trying for a moment\) \(is etcd running and reachable at http:\/\/127\.0\.0\.1:\d+\? check the endpoint and the network\)/);
});

t.test('trellisctl explains etcd failures inside a command; other failures pass through', async (t) => {
  t.equal(describeCommandError(new Error('plain')), 'plain');
  t.equal(isEtcdClientError(new TrellisError(ErrorCode.Config, 'x')), false);
});

t.test('a file error is said once, with the path', async (t) => {
  const enoent = Object.assign(new Error("ENOENT: no such file or directory, open '/x'"), { code: 'ENOENT', syscall: 'open', path: '/x' });
  const wrapped = new TrellisError(ErrorCode.Config, 'cannot read etcd CA /x: no such file', { cause: enoent });
  t.equal(describeError(wrapped), 'cannot read etcd CA /x: no such file');
  const other = new TrellisError(ErrorCode.Config, 'outer', { cause: new Error('inner') });
  t.equal(describeError(other), 'outer: inner', 'other causes are still appended');
});
