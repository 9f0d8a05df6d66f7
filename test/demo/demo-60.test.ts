// `npm run demo` at its largest: 60 hosts (the --help maximum) on this
// machine, one pod each, all green. The demo's waits scale with the number of
// hosts (bounded parallel starts, progress-based convergence), so this size
// must converge as the small ones do; the wall time is printed as a comment.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { listNamespaces, NETNS_PREFIX, needRoot } from '../../lab/netns.js';
import { needMoto } from '../../lab/moto.js';
import { withoutNodeOptions } from '../../lab/pids.js';
import { bin } from '../../lab/trellis.js';

const skip = needRoot() || needMoto();
// Sixty daemons start a few at a time: more than a minute, not the file default.
t.setTimeout(900_000);

t.test('demo: 60 hosts, one pod each, all green', { skip, timeout: 880_000 }, async (t) => {
  const started = Date.now();
  // Run as `npm run demo` runs: without tap's module hooks, which the demo
  // would pass on to every daemon and CNI call it spawns (see withoutNodeOptions).
  const [cmd, args] = withoutNodeOptions(process.execPath, [bin('examples/demo/demo'), '--nodes', '60', '--pods-per-node', '1']);
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 870_000 });
  t.comment(`60-host demo: ${Math.round((Date.now() - started) / 1000)} s wall time`);
  t.equal(r.status, 0, 'the demo exits 0');
  if (r.status !== 0) t.comment(r.stderr || r.stdout.slice(-3000));
  t.match(r.stdout, /starting 60 trellisd/);
  t.match(r.stdout, /all 60 pods \(3540 pairs\): same subnet (\d+)\/\1, across subnets (\d+)\/\2/);
  t.match(r.stdout, /3540\/3540 pings answered: all green/);
  t.same(listNamespaces().filter((n) => n.startsWith(`${NETNS_PREFIX}${r.pid as number}-`)), [], 'no namespace left');
});
