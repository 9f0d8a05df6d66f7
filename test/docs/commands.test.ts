// Every trellisctl and trellisd command line the manual shows (```sh blocks,
// and "$ " lines of ```console blocks) names commands and options that exist;
// the offline ones (topology validate/render, vpc plan) are run from the
// repository root, and where the page shows their output, they print it.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { main as trellisctl, root } from '../../src/cli/main.js';
import type { CommandNode, LeafCommand } from '../../src/cli/spec.js';
import { bin, ROOT } from '../../lab/trellis.js';
import { codeBlocks, manualPages, programOf, shLines, shownCommands, simpleCommands } from './manual.js';

process.chdir(ROOT);

interface Shown {
  readonly where: string;
  readonly argv: string[];
  /** Output lines shown after a "$ " command; undefined for ```sh lines. */
  readonly output: readonly string[] | undefined;
}

const shown: Shown[] = [];
const cats: Shown[] = [];
for (const page of manualPages()) {
  for (const block of codeBlocks(page)) {
    const lines =
      block.lang === 'sh'
        ? shLines(block).map((command, i) => ({ command, output: undefined, where: `${page.file}:${block.line} (line ${i + 1})` }))
        : block.lang === 'console'
          ? shownCommands(block).map((c) => ({ command: c.command, output: c.output, where: `${page.file}:${c.line}` }))
          : [];
    for (const { command, output, where } of lines) {
      const parts = simpleCommands(command);
      for (const argv of parts) {
        if (argv[0] === 'cat' && argv.length === 2 && parts.length === 1) cats.push({ where, argv, output });
        if (programOf(argv) !== undefined) shown.push({ where, argv, output: parts.length === 1 ? output : undefined });
      }
    }
  }
}

/** Walks the trellisctl tree; returns a problem, or the leaf and its positionals. */
function resolveCtl(args: readonly string[]): string | { leaf: LeafCommand | undefined; path: string[]; positionals: string[] } {
  let node: CommandNode = root;
  const path: string[] = [];
  let i = 0;
  while (node.kind === 'group') {
    const word = args[i];
    if (word === '--help' || word === '-h') return { leaf: undefined, path, positionals: [] };
    const next: CommandNode | undefined = node.commands.find((c) => c.name === word);
    if (next === undefined) return `no command ${JSON.stringify(word ?? '')} under "trellisctl ${path.join(' ')}"`.replace(' "', ' "').trimEnd();
    node = next;
    path.push(next.name);
    i++;
  }
  const leaf: LeafCommand = node;
  const positionals: string[] = [];
  for (; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const name = a.slice(2).split('=')[0] as string;
      if (name === 'help') continue;
      const spec = leaf.options[name];
      if (spec === undefined) return `trellisctl ${path.join(' ')} has no option --${name}`;
      if (spec.type === 'string' && !a.includes('=')) i++;
    } else if (a.startsWith('-') && a.length > 1) {
      const short = a.slice(1, 2);
      if (short === 'h') continue;
      const found = Object.values(leaf.options).find((o) => o.short === short);
      if (found === undefined) return `trellisctl ${path.join(' ')} has no option -${short}`;
      if (found.type === 'string' && a.length === 2) i++;
    } else {
      positionals.push(a);
    }
  }
  if (positionals.length < leaf.positionals.min || positionals.length > leaf.positionals.max) {
    return `trellisctl ${path.join(' ')} takes ${leaf.args || 'no arguments'}, shown with ${positionals.length}`;
  }
  return { leaf, path, positionals };
}

/** trellisd's options, from its own --help. */
function trellisdOptions(): Set<string> {
  const r = spawnSync(process.execPath, [bin('daemon/trellisd'), '--help'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`trellisd --help failed: ${r.stderr}`);
  return new Set([...r.stdout.matchAll(/(?<![\w-])(--[a-z][a-z-]*|-[a-z])\b/g)].map((m) => m[1] as string));
}

t.test('the manual shows enough commands to be worth checking', async (t) => {
  t.ok(shown.filter((s) => programOf(s.argv)?.program === 'trellisctl').length >= 30, 'trellisctl command lines found');
  t.ok(shown.filter((s) => programOf(s.argv)?.program === 'trellisd').length >= 4, 'trellisd command lines found');
});

t.test('every trellisctl command line names a command and options that exist', async (t) => {
  for (const s of shown) {
    const p = programOf(s.argv);
    if (p?.program !== 'trellisctl') continue;
    const r = resolveCtl(p.args);
    t.equal(typeof r === 'string' ? r : 'ok', 'ok', `${s.where}: ${s.argv.join(' ')}`);
  }
});

t.test('every trellisd command line names options that exist', async (t) => {
  const options = trellisdOptions();
  t.ok(options.has('--config') && options.has('--etcd-endpoints'), 'trellisd --help lists its options and configuration flags');
  for (const s of shown) {
    const p = programOf(s.argv);
    if (p?.program !== 'trellisd') continue;
    const unknown = p.args.filter((a) => a.startsWith('-') && !options.has(a.split('=')[0] as string));
    const positionals = p.args.filter((a, i) => !a.startsWith('-') && !(p.args[i - 1] ?? '').startsWith('-'));
    t.same({ unknown, positionals }, { unknown: [], positionals: [] }, `${s.where}: ${s.argv.join(' ')}`);
  }
});

/** Shown output lines, in order, with "..." / "…" standing for lines left out. */
function compareOutput(t: Test, actual: string, shownLines: readonly string[], label: string): void {
  const want = [...shownLines];
  while (want.length > 0 && want.at(-1)?.trim() === '') want.pop();
  const got = actual.replace(/\n$/, '').split('\n').map((l) => l.trimEnd());
  const elided = want.some((l) => /^\s*(\.\.\.|…)\s*$/.test(l));
  if (!elided) {
    t.same(got, want.map((l) => l.trimEnd()), label);
    return;
  }
  let at = 0;
  const missing: string[] = [];
  for (const line of want) {
    if (/^\s*(\.\.\.|…)\s*$/.test(line)) continue;
    const k = got.indexOf(line.trimEnd(), at);
    if (k < 0) missing.push(line);
    else at = k + 1;
  }
  t.same(missing, [], `${label} (every shown line, in order)`);
}

const OFFLINE = new Set(['topology validate', 'topology render', 'vpc plan', 'bgp plan']);

t.test('offline commands run as shown', async (t) => {
  let ran = 0;
  for (const s of shown) {
    const p = programOf(s.argv);
    if (p?.program !== 'trellisctl') continue;
    const r = resolveCtl(p.args);
    if (typeof r === 'string' || r.leaf === undefined || !OFFLINE.has(r.path.join(' '))) continue;
    if (p.args.some((a) => /^[A-Z][A-Z-]*$/.test(a) || a === '-')) continue; // a placeholder (FILE) or standard input
    let out = '';
    const io = { stdout: (x: string) => void (out += x), stderr: (x: string) => void (out += x), readFile: (f: string) => Promise.resolve(readFileSync(f, 'utf8')) };
    const code = await trellisctl(p.args, io);
    ran++;
    const label = `${s.where}: ${s.argv.join(' ')}`;
    if (s.output === undefined || s.output.every((l) => l.trim() === '')) {
      t.equal(code, 0, `${label} succeeds`);
    } else {
      compareOutput(t, out, s.output, label);
      // Output made only of `FILE: PATH: message` problems is a failed check (exit 1); anything else succeeds.
      const lines = s.output.filter((l) => l.trim() !== '' && !/^\s*(\.\.\.|…)\s*$/.test(l));
      const problems = lines.every((l) => /^\S+: \S+: /.test(l));
      t.equal(code, problems ? 1 : 0, `${label}: exit ${problems ? 1 : 0}`);
    }
  }
  t.ok(ran >= 8, `ran ${ran} offline commands`);
});

t.test('files shown with cat hold what the page shows', async (t) => {
  t.ok(cats.length >= 1);
  for (const c of cats) compareOutput(t, readFileSync(c.argv[1] as string, 'utf8'), c.output ?? [], `${c.where}: ${c.argv.join(' ')}`);
});
