// The command-line conventions shared by the BUILT trellisctl and trellisd
// (dist/, run as child processes): --version, help COMMAND, "did you mean",
// one error style (PROGRAM: what went wrong (what to do)), no library wording.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, runCli } from '../../lab/trellis.js';

const ctl = (args: string[], env: Record<string, string> = {}) => runCli('src/cli/trellisctl', args, env);
const trellisd = (args: string[], env: Record<string, string> = {}) => runCli('daemon/trellisd', args, env);
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const dir = mkdtempSync(join(tmpdir(), 'trellis-conventions-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
/** The minimum trellisd needs for --check-config. */
const node = ['--host-ip', '198.18.0.10', '--interface', 'eth0'];

t.test('--version prints NAME VERSION', async (t) => {
  t.same(ctl(['--version']), { code: 0, stdout: `trellisctl ${version}\n`, stderr: '' });
  t.same(trellisd(['--version']), { code: 0, stdout: `trellisd ${version}\n`, stderr: '' });
});

t.test('help [COMMAND...] prints what COMMAND --help prints', async (t) => {
  for (const words of [[], ['nodes'], ['topology', 'render']]) {
    const help = ctl(['help', ...words]);
    const dashed = ctl([...words, '--help']);
    t.equal(help.code, 0, `help ${words.join(' ')}`);
    t.equal(help.stdout, dashed.stdout, `help ${words.join(' ')} = ${words.join(' ')} --help`);
  }
  t.match(ctl(['--help']).stdout, /"trellisctl help COMMAND"[^]*"trellisctl --version"/, 'the root help mentions both');
  const bad = ctl(['help', 'nods']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^trellisctl: unknown command "nods" for "trellisctl" \(did you mean "nodes"\?\)\n/);
});

t.test('did you mean: commands, options, configuration keys', async (t) => {
  const cmd = ctl(['block']);
  t.equal(cmd.code, 2);
  t.equal(cmd.stderr.split('\n')[0], 'trellisctl: unknown command "block" for "trellisctl" (did you mean "blocks"?)');
  const opt = ctl(['blocks', '--nod', 'a']);
  t.equal(opt.code, 2);
  t.equal(opt.stderr.split('\n')[0], 'trellisctl: unknown option "--nod" (did you mean "--node"?)');
  const dopt = trellisd(['--vpc-enable']);
  t.same(dopt, { code: 2, stdout: '', stderr: 'trellisd: unknown option "--vpc-enable" (did you mean "--vpc-enabled"? run "trellisd --help" for usage)\n' });
  const cfg = file('typo.yaml', 'hostIp: 198.18.0.10\ninterface: eth0\netcd:\n  endpoint: [http://127.0.0.1:2379]\n');
  const key = trellisd(['--check-config', '-c', cfg]);
  t.equal(key.code, 2);
  t.match(key.stderr, `${cfg}: unknown key hostIp (did you mean hostIP?)`);
  t.match(key.stderr, `${cfg}: unknown key etcd.endpoint (did you mean etcd.endpoints?)`);
  const far = trellisd(['--check-config', '-c', file('far.yaml', 'zzzzzz: 1\n'), ...node]);
  t.match(far.stderr, /unknown key zzzzzz\n/, 'no suggestion when nothing is close');
});

t.test('one error style: PROGRAM: what went wrong (what to do), no library wording', async (t) => {
  t.same(trellisd(['--bogus']), { code: 2, stdout: '', stderr: 'trellisd: unknown option "--bogus" (run "trellisd --help" for usage)\n' });
  const missing = join(dir, 'missing.yaml');
  const d = trellisd(['--check-config', '-c', missing]);
  t.same(d, { code: 2, stdout: '', stderr: `trellisd: cannot read config file ${missing}: no such file\n` }, 'a missing file is reported once, with the path');
  const c = ctl(['nodes', '-c', missing]);
  t.same(c, { code: 1, stdout: '', stderr: `trellisctl: cannot read config file ${missing}: no such file\n` });
  const multi = trellisd(['--check-config', '-c', file('multi.yaml', 'hostIP: 198.18.0.10\n---\ninterface: eth0\n'), ...node]);
  t.equal(multi.code, 2);
  t.match(multi.stderr, /multi\.yaml: the file must hold one YAML document, found 2/);
  t.notMatch(multi.stderr, /parseAllDocuments/);
  const both = trellisd(['--check-config', '--withdraw']);
  t.same(both, { code: 2, stdout: '', stderr: 'trellisd: --check-config and --withdraw cannot be combined (run "trellisd --help" for usage)\n' });
  const extra = trellisd(['--check-config', 'now']);
  t.equal(extra.code, 2);
  t.match(extra.stderr, /^trellisd: unexpected argument "now" \(trellisd takes no arguments; settings are --flags; run "trellisd --help" for usage\)\n$/);
});

t.test('unreachable etcd: the endpoint is named, with what to check', async (t) => {
  const r = ctl(['nodes', '--etcd-endpoints', 'http://127.0.0.1:9']);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'trellisctl: cannot reach etcd at http://127.0.0.1:9: connection refused by 127.0.0.1:9 (is etcd running and reachable at that address?)\n');
  const w = trellisd(['--withdraw', '--node-name', 'x', ...node, '--etcd-endpoints', 'http://127.0.0.1:9']);
  t.equal(w.code, 1);
  t.match(w.stderr, /^trellisd: withdraw failed: cannot reach etcd at http:\/\/127\.0\.0\.1:9: connection refused by 127\.0\.0\.1:9 \(is etcd running/);
});

