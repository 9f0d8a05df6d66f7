// Reading the manual (README.md and docs/*.md) for the tests under test/docs:
// its fenced code blocks, the command lines shown in them, the repository
// paths and the relative links it mentions. Pure text handling, no IO beyond
// reading the pages.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../lab/trellis.js';

export interface Page {
  /** Path relative to the repository root, e.g. "docs/vpc.md". */
  readonly file: string;
  readonly text: string;
}

export interface CodeBlock {
  readonly page: string;
  /** The info string after the opening fence ("sh", "console", "yaml"…). */
  readonly lang: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly body: string;
}

/** A command shown in a ```console block ("$ …") with the lines shown after it. */
export interface ShownCommand {
  readonly page: string;
  readonly line: number;
  readonly command: string;
  /** The output lines shown before the next "$ " line or the end of the block. */
  readonly output: readonly string[];
}

/** README.md and every page under docs/. */
export function manualPages(): Page[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs].map((file) => ({ file, text: readFileSync(join(ROOT, file), 'utf8') }));
}

export function codeBlocks(page: Page): CodeBlock[] {
  const out: CodeBlock[] = [];
  const lines = page.text.split('\n');
  let open: { lang: string; line: number; body: string[]; indent: string } | undefined;
  for (const [i, raw] of lines.entries()) {
    const fence = /^(\s*)```(.*)$/.exec(raw);
    if (open === undefined) {
      if (fence) open = { lang: (fence[2] ?? '').trim(), line: i + 1, body: [], indent: fence[1] ?? '' };
    } else if (fence && (fence[2] ?? '').trim() === '') {
      out.push({ page: page.file, lang: open.lang, line: open.line, body: open.body.join('\n') });
      open = undefined;
    } else {
      open.body.push(raw.startsWith(open.indent) ? raw.slice(open.indent.length) : raw);
    }
  }
  return out;
}

/** Text outside fenced code blocks. */
export function prose(page: Page): string {
  return page.text.replace(/^\s*```[^\n]*\n[\s\S]*?^\s*```\s*$/gm, '');
}

/** Shell command lines of a ```sh block: continuations joined, comments and blank lines dropped. */
export function shLines(block: CodeBlock): string[] {
  const joined = block.body.replace(/\\\n\s*/g, ' ');
  return joined
    .split('\n')
    .map((l) => stripComment(l).trim())
    .filter((l) => l !== '');
}

/** The "$ " commands of a ```console block with their shown output. */
export function shownCommands(block: CodeBlock): ShownCommand[] {
  const out: { line: number; command: string; output: string[] }[] = [];
  for (const [i, l] of block.body.split('\n').entries()) {
    if (l.startsWith('$ ')) out.push({ line: block.line + 1 + i, command: stripComment(l.slice(2)).trim(), output: [] });
    else out.at(-1)?.output.push(l);
  }
  return out.map((c) => ({ page: block.page, ...c }));
}

function stripComment(line: string): string {
  // A "#" that starts a word begins a comment (outside quotes, which examples here do not mix with it).
  const m = /(^|\s)#/.exec(line);
  return m ? line.slice(0, m.index) : line;
}

/** Split a command line into simple commands at |, ;, && and ||, and each into words. */
export function simpleCommands(line: string): string[][] {
  return line
    .split(/\|\||&&|[|;]/)
    .map((part) => words(part))
    .filter((w) => w.length > 0);
}

function words(text: string): string[] {
  const out: string[] = [];
  const re = /'([^']*)'|"([^"]*)"|(\S+)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push(m[1] ?? m[2] ?? m[3] ?? '');
  return out.map((w) => w.replace(/^\(+|\)+$/g, ''));
}

export type Program = 'trellisctl' | 'trellisd';

/**
 * The program a simple command runs and its arguments, looking through
 * environment assignments, `npx`, `sudo`, `ip netns exec NS`, and
 * `node dist/…/trellisctl.js`.
 */
export function programOf(argv: readonly string[]): { program: Program; args: string[] } | undefined {
  let rest = [...argv];
  for (;;) {
    const w = rest[0];
    if (w === undefined) return undefined;
    if (/^[A-Z_][A-Z0-9_]*=/.test(w) || w === 'npx' || w === 'sudo' || w === 'exec' || w === 'node') rest = rest.slice(1);
    else if (w === 'ip' && rest[1] === 'netns' && rest[2] === 'exec') rest = rest.slice(4);
    else break;
  }
  const name = (rest[0] ?? '').split('/').pop()?.replace(/\.js$/, '');
  if (name === 'trellisctl' || name === 'trellisd') return { program: name, args: rest.slice(1) };
  return undefined;
}

/** Top-level folders whose files the manual may name. */
const REPO_DIRS = ['src', 'daemon', 'cni-plugin', 'proto', 'lab', 'test', 'bench', 'examples', 'systemd', 'docs', '.ci', 'dist'];

/** Repository paths named in a page (in backticks, links, or code), e.g. "examples/topology.yaml". */
export function repoPaths(page: Page): string[] {
  const found = new Set<string>();
  const re = new RegExp(`(?<![\\w./-])((?:${REPO_DIRS.map((d) => d.replace('.', '\\.')).join('|')})/[\\w.@/-]*)`, 'g');
  for (const m of page.text.matchAll(re)) {
    let p = (m[1] ?? '').replace(/[.,:;]+$/, '');
    if (p.includes('<') || p.includes('*')) continue;
    p = p.replace(/\/$/, '');
    found.add(p);
  }
  return [...found].sort();
}

/** Relative links of a page: [text](target), not http(s) or mailto. */
export function relativeLinks(page: Page): { target: string; anchor: string | undefined }[] {
  const out: { target: string; anchor: string | undefined }[] = [];
  for (const m of prose(page).matchAll(/\]\(([^)\s]+)\)/g)) {
    const href = m[1] ?? '';
    if (/^[a-z]+:/.test(href)) continue;
    const [target, anchor] = href.split('#') as [string, string | undefined];
    out.push({ target, anchor });
  }
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to "-". */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Anchors of a page's headings. */
export function anchors(page: Page): Set<string> {
  const out = new Set<string>();
  for (const m of prose(page).matchAll(/^#{1,6}\s+(.+)$/gm)) out.add(slug(m[1] ?? ''));
  return out;
}
