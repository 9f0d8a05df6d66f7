// The manual's references resolve: every repository path it names exists,
// every relative link reaches a file and, with an anchor, a heading there.
// Two pages are written alongside this manual (docs/ipam.md, the IPAM record
// layout; docs/scale.md, cluster-scale figures); links to them are checked
// once they exist.
import t, { type Test } from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { ROOT } from '../../lab/trellis.js';
import { anchors, manualPages, relativeLinks, repoPaths } from './manual.js';

const pages = manualPages();

/** Build outputs that exist only after an npm script other than the build: the script must name them. */
function builtByScript(path: string): boolean {
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  return path.startsWith('dist/') && Object.values(scripts).some((s) => s.split(/\s+/).includes(path));
}

function present(path: string, t: Test, label: string): boolean {
  if (existsSync(join(ROOT, path)) || builtByScript(path)) return true;
  t.fail(`${label}: ${path} does not exist`);
  return false;
}

t.test('the manual is where the layout says', async (t) => {
  const names = pages.map((p) => p.file);
  for (const page of ['architecture', 'configuration', 'topology', 'state', 'vpc', 'cni', 'systemd', 'trellisctl', 'performance', 'troubleshooting']) {
    t.ok(names.includes(`docs/${page}.md`), `docs/${page}.md`);
  }
  const vpc = readFileSync(join(ROOT, 'docs/vpc.md'), 'utf8');
  t.match(vpc, /\n## Route planning\n[\s\S]*\n1\. [\s\S]*\n2\. [\s\S]*\n3\. [\s\S]*\n4\. [\s\S]*\n5\. /, 'docs/vpc.md lists the planner objectives in order under "Route planning" (cited by the code)');
  t.match(readFileSync(join(ROOT, 'docs/state.md'), 'utf8'), /\/v1\/ipam\/<node>\/[^\n]*<address>[\s\S]*PodAddress/, 'docs/state.md documents the per-node pod address records');
  for (const p of pages) t.notMatch(p.text, /DESIGN\.md|\/work\//, `${p.file} refers to no document outside the repository`);
});

t.test('every repository path named in the manual exists', async (t) => {
  let checked = 0;
  for (const page of pages) {
    for (const path of repoPaths(page)) {
      present(path, t, page.file);
      checked++;
    }
  }
  t.ok(checked >= 40, `${checked} paths checked`);
  for (const file of ['examples/topology.yaml', 'examples/bad-topology.yaml', 'examples/vpc-plan/topology.yaml', 'examples/vpc-plan/nodes.json', 'examples/10-trellis.conflist', 'systemd/trellisd.service']) {
    t.ok(existsSync(join(ROOT, file)), `${file} ships`);
  }
});

t.test('every relative link resolves, anchors included', async (t) => {
  let checked = 0;
  for (const page of pages) {
    for (const link of relativeLinks(page)) {
      const target = link.target === '' ? page.file : relative(ROOT, normalize(join(ROOT, dirname(page.file), link.target)));
      checked++;
      if (!present(target, t, `${page.file} → ${link.target}`) || link.anchor === undefined) continue;
      const to = pages.find((p) => p.file === target);
      if (to === undefined) {
        t.fail(`${page.file}: anchor #${link.anchor} into ${target}, which is not a page of the manual`);
        continue;
      }
      t.ok(anchors(to).has(link.anchor), `${page.file}: ${target}#${link.anchor} names a heading`);
    }
  }
  t.ok(checked >= 40, `${checked} links checked`);
});
