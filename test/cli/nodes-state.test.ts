// trellisctl nodes: the life cycle state of each node (live while a lease
// holds its record, dead while only block claims name it), and --watch
// streaming each change, against a real etcd and a real trellisd.
import t from 'tap';
import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../lab/etcd.js';
import { until } from '../../lab/pids.js';
import { bin, daemon, runCli, seedTopology } from '../../lab/trellis.js';

t.test('nodes shows live and dead nodes; --watch streams the changes', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const e = ['--etcd-endpoints', etcd.endpoint];
  const d = daemon(t, { etcd: etcd.endpoint, nodeName: 'watched', hostIP: '198.18.1.70', holdTime: '3s' });
  await d.start();
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const block = Object.values(await client.getAll().prefix('/trellis/v1/blocks/').strings()).map((v) => JSON.parse(v) as { prefix: string })[0]!.prefix;

  const watch = (args: string[]) => {
    const child = spawn(process.execPath, [bin('src/cli/trellisctl'), 'nodes', '--watch', ...args, ...e], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '', code: undefined as number | null | undefined };
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out.stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out.stderr += s));
    child.on('exit', (code) => (out.code = code));
    t.teardown(() => {
      if (out.code === undefined && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    });
    return { child, out };
  };
  const table = watch([]);
  const json = watch(['-o', 'json']);
  await until('both watches listed the nodes', () => /watched/.test(table.out.stdout) && /watched/.test(json.out.stdout));
  t.match(table.out.stdout, new RegExp(`^NODE\\s+STATE\\s+SUBNET[^\\n]*\\nwatched\\s+live\\s+subnet-a1\\s+zone-a\\s+198\\.18\\.1\\.70\\s+-\\s+[0-9a-f]+\\s+${block.replace(/\./g, '\\.')}\\s+ok\\n$`));
  t.match(JSON.parse(json.out.stdout.split('\n')[0]!), [{ name: 'watched', state: 'live', blocks: [block] }]);

  d.kill();
  await until('the watch reported the death', () => / watched {2}live \(.*\) -> dead/.test(table.out.stdout) && /"to":"dead"/.test(json.out.stdout), 30_000);
  t.match(table.out.stdout, new RegExp(`\\n\\d{4}-\\d\\d-\\d\\dT[^ ]+Z {2}watched {2}live \\(${block.replace(/\./g, '\\.')}\\) -> dead \\(${block.replace(/\./g, '\\.')}\\)\\n`));
  const listed = runCli('src/cli/trellisctl', ['nodes', ...e]);
  t.match(listed.stdout, new RegExp(`\\nwatched\\s+dead\\s+subnet-a1\\s+zone-a\\s+-\\s+-\\s+-\\s+${block.replace(/\./g, '\\.')}\\s+ok\\n`), 'a dead node is listed with the blocks it still holds');
  t.match(JSON.parse(runCli('src/cli/trellisctl', ['nodes', '-o', 'json', ...e]).stdout), [{ name: 'watched', state: 'dead', lease: '-', blocks: [block] }]);

  const removed = runCli('src/cli/trellisctl', ['node', 'remove', 'watched', ...e]);
  t.equal(removed.code, 0, removed.stderr);
  await until('the watch reported the removal', () => /dead \(.*\) -> collected/.test(table.out.stdout) && /"to":"collected"/.test(json.out.stdout), 30_000);
  const lines = json.out.stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(lines, [{ node: 'watched', from: 'live', to: 'dead', blocks: [block] }, { node: 'watched', from: 'dead', to: 'collected', blocks: [] }]);
  t.equal(runCli('src/cli/trellisctl', ['nodes', ...e]).stdout, '(none)\n', 'a removed node is not listed');

  for (const w of [table, json]) {
    w.child.kill('SIGINT');
    await until('the watch ended', () => w.out.code !== undefined);
    t.equal(w.out.code, 0, 'an interrupted watch exits 0');
    t.equal(w.out.stderr, '');
  }
});
