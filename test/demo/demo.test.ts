// `npm run demo` end to end: the whole cluster in namespaces, pings on real
// packets, with one route per node and with a route limit that forces
// aggregation; nothing left behind afterwards.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { listNamespaces, needRoot } from '../helpers/netns.js';
import { needMoto } from '../helpers/moto.js';
import { bin } from '../helpers/trellis.js';

const skip = needRoot() || needMoto();

function trellisTemp(): string[] {
  return existsSync(tmpdir()) ? readdirSync(tmpdir()).filter((n) => /^trellis(d)?-/.test(n) && !n.startsWith('trellis-test-ports')) : [];
}

for (const [label, args] of [
  ['one entry per node', ['--nodes', '6', '--pods-per-node', '1']],
  ['route limit 4 forces aggregation', ['--nodes', '6', '--pods-per-node', '2', '--route-limit', '4']],
] as const) {
  t.test(`demo: ${label}`, { skip, timeout: 180_000 }, async (t) => {
    const namespaces = new Set(listNamespaces());
    const temps = new Set(trellisTemp());
    const r = spawnSync(process.execPath, [bin('examples/demo/demo'), ...args], { encoding: 'utf8', timeout: 170_000 });
    t.equal(r.status, 0, r.stderr || r.stdout.slice(-3000));
    t.match(r.stdout, /pings answered: all green/);
    t.match(r.stdout, /same subnet (\d+)\/\1, across subnets (\d+)\/\2/);
    if ((args as readonly string[]).includes('4')) t.match(r.stdout, /forwarding for/, 'aggregated entries target forwarding hosts');
    else t.notMatch(r.stdout, /forwarding for/, 'every node has its own entry');
    t.same(listNamespaces().filter((n) => !namespaces.has(n)), [], 'no namespace left');
    t.same(trellisTemp().filter((n) => !temps.has(n)), [], 'no temp dir left');
  });
}

t.test('demo --help and bad flags', async (t) => {
  const help = spawnSync(process.execPath, [bin('examples/demo/demo'), '--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /--route-limit N/);
  const bad = spawnSync(process.execPath, [bin('examples/demo/demo'), '--nodes', 'x'], { encoding: 'utf8' });
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--nodes must be a whole number from 3 to 60, got x/);
});
