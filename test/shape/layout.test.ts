// The codebase's layering, checked on the source itself: which folder may
// import which, no import cycle, nothing outside test/ imports test/, and the
// build output holds no test code. A new import that breaks a rule fails here
// with the file and the import named.

import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { ROOT } from '../../lab/trellis.js';


const PRODUCT = ['src', 'daemon', 'cni-plugin', 'lab', 'bench', 'examples'];

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(join(ROOT, dir))) {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) walk(path, out);
    else if (/\.(ts|mts)$/.test(name) && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

interface Import {
  readonly spec: string;
  /** Repository path of the imported file (relative imports), else undefined. */
  readonly target: string | undefined;
  readonly typeOnly: boolean;
}

const importPattern = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): Import[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: Import[] = [];
  for (const m of text.matchAll(importPattern)) {
    const spec = (m[3] ?? m[4]) as string;
    const target = spec.startsWith('.') ? normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts') : undefined;
    out.push({ spec, target, typeOnly: m[2] !== undefined });
  }
  return out;
}

const files = [...PRODUCT, 'test'].flatMap((d) => walk(d));
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const top = (path: string): string => path.split('/')[0] as string;
const under = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);

t.test('the scanner sees the imports it checks', async (t) => {
  t.ok(files.length > 150, `${files.length} source files scanned`);
  const daemon = graph.get('daemon/trellisd.ts') ?? [];
  t.ok(daemon.some((i) => i.target === 'src/errors.ts'), 'daemon/trellisd.ts imports src/errors.ts');
  const unresolved = [...graph].flatMap(([file, imports]) =>
    imports.filter((i) => i.target !== undefined && !existsSync(join(ROOT, i.target))).map((i) => `${file} -> ${i.spec}`),
  );
  t.same(unresolved, [], 'every relative import names a file that exists');
});

t.test('nothing outside test/ imports test/', async (t) => {
  const bad = [...graph].flatMap(([file, imports]) =>
    top(file) === 'test' ? [] : imports.filter((i) => i.target !== undefined && top(i.target) === 'test').map((i) => `${file} -> ${i.spec}`),
  );
  t.same(bad, []);
});

t.test('the pure core imports no IO and nothing outside src/core', async (t) => {
  const allowedPackages = new Set(['ip-cidr', 'yaml']);
  const bad: string[] = [];
  for (const [file, imports] of graph) {
    if (!under(file, 'src/core')) continue;
    for (const i of imports) {
      if (i.target === undefined ? !allowedPackages.has(i.spec) : !(under(i.target, 'src/core') || i.target === 'src/errors.ts')) {
        bad.push(`${file} -> ${i.spec}`);
      }
    }
  }
  t.same(bad, []);
});

t.test('src/ never reaches into the daemon, the plugin, the lab, bench or examples', async (t) => {
  const bad = [...graph].flatMap(([file, imports]) =>
    top(file) !== 'src' ? [] : imports.filter((i) => i.target !== undefined && top(i.target) !== 'src').map((i) => `${file} -> ${i.spec}`),
  );
  t.same(bad, []);
});

t.test('adapters import neither the configuration nor one another', async (t) => {
  const adapters = ['src/etcd', 'src/netlink', 'src/aws', 'src/nftables', 'src/bgp'];
  const bad: string[] = [];
  for (const [file, imports] of graph) {
    const own = adapters.find((a) => under(file, a));
    if (own === undefined) continue;
    for (const i of imports) {
      if (i.target === undefined) continue;
      if (under(i.target, 'src/config') || under(i.target, 'src/cli') || adapters.some((a) => a !== own && under(i.target as string, a))) {
        bad.push(`${file} -> ${i.spec}`);
      }
    }
  }
  t.same(bad, []);
});

t.test('the daemon and the plugin never import the lab', async (t) => {
  const bad = [...graph].flatMap(([file, imports]) =>
    !['daemon', 'cni-plugin', 'src'].includes(top(file)) ? [] : imports.filter((i) => i.target !== undefined && top(i.target) === 'lab').map((i) => `${file} -> ${i.spec}`),
  );
  t.same(bad, []);
});

/** Every import cycle among `nodes` (type-only imports included), as file lists. */
function cycles(nodes: readonly string[]): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const i of graph.get(v) ?? []) {
      const w = i.target;
      if (w === undefined || !graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      for (;;) {
        const w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
        if (w === v) break;
      }
      const selfLoop = (graph.get(v) ?? []).some((i) => i.target === v);
      if (component.length > 1 || selfLoop) found.push(component.sort());
    }
  };
  for (const v of nodes) if (!index.has(v)) visit(v);
  return found;
}

t.test('no import cycle in product code', async (t) => {
  t.same(cycles(files.filter((f) => top(f) !== 'test')), []);
});

t.test('the cycle finder finds a cycle', async (t) => {
  // Guard against a finder that can never report anything: a made-up graph.
  const saved = new Map(graph);
  graph.clear();
  graph.set('a.ts', [{ spec: './b.js', target: 'b.ts', typeOnly: true }]);
  graph.set('b.ts', [{ spec: './a.js', target: 'a.ts', typeOnly: false }]);
  graph.set('c.ts', []);
  try {
    t.same(cycles(['a.ts', 'b.ts', 'c.ts']), [['a.ts', 'b.ts']]);
  } finally {
    graph.clear();
    for (const [k, v] of saved) graph.set(k, v);
  }
});

t.test('the build holds no test code', async (t) => {
  const dist = join(ROOT, 'dist');
  if (!existsSync(dist)) {
    t.fail('dist/ is missing: npm test builds first');
    return;
  }
  const all = walkAny(dist);
  t.ok(all.some((p) => p.endsWith('daemon/trellisd.js')), 'dist/ holds the daemon');
  t.same(all.filter((p) => /(^|\/)test(\/|$)/.test(relative(dist, p))), [], 'no path under dist/ names test');
});

function walkAny(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      out.push(path);
      walkAny(path, out);
    } else out.push(path);
  }
  return out;
}
