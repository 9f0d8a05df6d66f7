// trellisctl as a real child process: the executable entry, exit codes,
// stdout/stderr and standard input. The child runs src/cli/trellisctl.ts with
// this process's TypeScript loader, so no build step is needed.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { contains, overlaps, parsePrefix } from '../../src/core/cidr.js';

const entry = fileURLToPath(new URL('../../src/cli/trellisctl.ts', import.meta.url));
const repo = fileURLToPath(new URL('../../', import.meta.url));

interface Ended {
  code: number | null;
  stdout: string;
  stderr: string;
}

function trellisctl(args: string[], stdin = ''): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, entry, ...args], { cwd: repo, stdio: 'pipe' });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`trellisctl ${args.join(' ')}: no exit within 60 s`));
    }, 60_000);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

t.test('the entry file is an executable script', async (t) => {
  t.match(readFileSync(entry, 'utf8'), /^#!\/usr\/bin\/env node\n/);
});

t.test('validate and render the example file', async (t) => {
  const ok = await trellisctl(['topology', 'validate', 'examples/topology.yaml']);
  t.same(ok, { code: 0, stdout: 'examples/topology.yaml: ok (3 zones, 6 subnets, network 100.96.0.0/11)\n', stderr: '' });

  const json = await trellisctl(['topology', 'render', 'examples/topology.yaml', '-o', 'json']);
  t.equal(json.code, 0);
  t.equal(json.stderr, '');
  const doc = JSON.parse(json.stdout) as { network: string; zones: Array<{ subnets: Array<{ podPrefix: string }> }> };
  const network = parsePrefix(doc.network);
  const pods = doc.zones.flatMap((z) => z.subnets.map((s) => parsePrefix(s.podPrefix)));
  t.equal(pods.length, 6, 'one pod prefix per subnet');
  t.ok(pods.every((p) => contains(network, p)), 'inside the network');
  t.ok(pods.every((p, i) => pods.slice(i + 1).every((q) => !overlaps(p, q))), 'pairwise disjoint');
});

t.test('failures and usage errors set the exit code', async (t) => {
  const invalid = await trellisctl(['topology', 'validate', 'test/fixtures/topology/too-small.yaml']);
  t.equal(invalid.code, 1);
  t.match(invalid.stderr, /^test\/fixtures\/topology\/too-small\.yaml: zones\[1\]\.subnets\[1\]: the network 100\.96\.0\.0\/14 is too small/);

  const usage = await trellisctl(['topology', 'render', 'examples/topology.yaml', '-o', 'xml']);
  t.equal(usage.code, 2);
  t.equal(usage.stdout, '');
  t.match(usage.stderr, /^trellisctl: invalid value "xml" for -o\/--output: expected table, json or yaml\nUsage: trellisctl topology render/);
});

t.test('"-" reads standard input', async (t) => {
  const text = readFileSync(new URL('../fixtures/topology/valid.yaml', import.meta.url), 'utf8');
  const r = await trellisctl(['topology', 'validate', '-'], text);
  t.same(r, { code: 0, stdout: '<stdin>: ok (2 zones, 3 subnets, network 100.96.0.0/11)\n', stderr: '' });
});
