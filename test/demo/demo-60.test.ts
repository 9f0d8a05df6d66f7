// `npm run demo` at its largest: 60 hosts (the --help maximum) on this
// machine, one pod each, all green. The demo's waits scale with the number of
// hosts (bounded parallel starts, progress-based convergence), so this size
// must converge as the small ones do; the wall time is printed as a comment.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { listNamespaces, NETNS_PREFIX, needRoot } from '../../lab/netns.js';
import { needMoto } from '../../lab/moto.js';
import { bin } from '../../lab/trellis.js';

// The full size is opt-in (TRELLIS_DEMO_60=1): on a shared 2-core machine it
// takes about 4 minutes (229 s all green, load average 30). The default suite
// runs the same at 21 hosts, the size the fixed waits used to break at.
const optIn = process.env.TRELLIS_DEMO_60 === '1' ? false : 'the 60-host demo runs only with TRELLIS_DEMO_60=1 (about 4 minutes)';
const skip = needRoot() || needMoto() || optIn;
const skipReduced = needRoot() || needMoto();
// Sixty daemons start one after another in small batches: minutes, not the file default.
t.setTimeout(900_000);

t.test('demo: 60 hosts, one pod each, all green', { skip, timeout: 880_000 }, async (t) => {
  const started = Date.now();
  const r = spawnSync(process.execPath, [bin('examples/demo/demo'), '--nodes', '60', '--pods-per-node', '1'], { encoding: 'utf8', timeout: 870_000 });
  t.comment(`60-host demo: ${Math.round((Date.now() - started) / 1000)} s wall time`);
  t.equal(r.status, 0, r.stderr || r.stdout.slice(-3000));
  t.match(r.stdout, /starting 60 trellisd/);
  t.match(r.stdout, /all 60 pods \(3540 pairs\): same subnet (\d+)\/\1, across subnets (\d+)\/\2/);
  t.match(r.stdout, /3540\/3540 pings answered: all green/);
  t.same(listNamespaces().filter((n) => n.startsWith(`${NETNS_PREFIX}${r.pid as number}-`)), [], 'no namespace left');
});

t.test('demo: 21 hosts, one pod each, all green', { skip: skipReduced, timeout: 400_000 }, async (t) => {
  const started = Date.now();
  const r = spawnSync(process.execPath, [bin('examples/demo/demo'), '--nodes', '21', '--pods-per-node', '1'], { encoding: 'utf8', timeout: 390_000 });
  t.comment(`21-host demo: ${Math.round((Date.now() - started) / 1000)} s wall time`);
  t.equal(r.status, 0, r.stderr || r.stdout.slice(-3000));
  t.match(r.stdout, /starting 21 trellisd/);
  t.match(r.stdout, /all 21 pods \(420 pairs\): same subnet (\d+)\/\1, across subnets (\d+)\/\2/);
  t.match(r.stdout, /420\/420 pings answered: all green/);
  t.same(listNamespaces().filter((n) => n.startsWith(`${NETNS_PREFIX}${r.pid as number}-`)), [], 'no namespace left');
});
