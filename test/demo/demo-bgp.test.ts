// `npm run demo -- --bgp` end to end: BIRD upstream, the outside client
// reaches every pod with a peer limit of 100 and of 3; nothing is left
// behind afterwards (namespaces, gobgpd or bird processes of the demo).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { listNamespaces, NETNS_PREFIX, needRoot } from '../../lab/netns.js';
import { bin } from '../../lab/trellis.js';

const skip = needRoot();

t.test('demo --bgp: outside client → every pod, all green twice', { skip, timeout: 900_000 }, async (t) => {
  const r = spawnSync(process.execPath, [bin('examples/demo/demo'), '--bgp'], { encoding: 'utf8', timeout: 880_000 });
  t.equal(r.status, 0, r.stderr);
  t.equal((r.stdout.match(/6\/6 answered: all green/g) ?? []).length, 2, 'both rounds all green');
  t.match(r.stdout, /peer limit 3 prefixes[\s\S]*BIRD's BGP routes[^\n]*\n(  100\.96\.\S+\/\d+ +via [0-9.]+\n){3}\n/, 'exactly 3 routes with the limit of 3');
  t.same(listNamespaces().filter((n) => n.startsWith(`${NETNS_PREFIX}${r.pid}-`)), [], 'no namespace left');
});
