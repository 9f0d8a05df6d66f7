// `npm run demo` end to end: the whole cluster in namespaces, pings on real
// packets, with one route per node and with a route limit that forces
// aggregation; nothing left behind afterwards, nor after a Ctrl-C.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { listNamespaces, NETNS_PREFIX, needRoot } from '../../lab/netns.js';
import { needMoto } from '../../lab/moto.js';
import { descendants, isAlive, until } from '../../lab/pids.js';
import { bin } from '../../lab/trellis.js';

const skip = needRoot() || needMoto();

/** Temp dirs made by process `pid` (the helpers name them trellis-<kind>-<pid>-…). */
function trellisTemp(pid: number): string[] {
  return existsSync(tmpdir()) ? readdirSync(tmpdir()).filter((n) => n.startsWith('trellis-') && n.includes(`-${pid}-`)) : [];
}

/** Namespaces made by process `pid` (the Lab names them trl<pid>-…). Other tests may run meanwhile: only the demo's count. */
function namespacesOf(pid: number): string[] {
  return listNamespaces().filter((n) => n.startsWith(`${NETNS_PREFIX}${pid}-`));
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '(gone)';
  }
}

/** Processes whose command line names a temp dir of process `pid` (etcd's data dir, trellisd's state dir…). */
function processesOf(pid: number): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(`trellis-etcd-${pid}-`) || cmd.includes(`trellis-trellisd-${pid}-`) || cmd.includes(`trellis-moto-${pid}-`)) out.push(`${e}: ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}


for (const [label, args] of [
  ['defaults: 9 nodes, 2 pods each, one entry per node', []],
  ['route limit 4 forces aggregation', ['--nodes', '6', '--pods-per-node', '2', '--route-limit', '4']],
] as const) {
  t.test(`demo: ${label}`, { skip, timeout: 180_000 }, async (t) => {
    const r = spawnSync(process.execPath, [bin('examples/demo/demo'), ...args], { encoding: 'utf8', timeout: 170_000 });
    t.equal(r.status, 0, r.stderr || r.stdout.slice(-3000));
    t.match(r.stdout, /pings answered: all green/);
    t.match(r.stdout, /same subnet (\d+)\/\1, across subnets (\d+)\/\2/);
    if ((args as readonly string[]).includes('4')) t.match(r.stdout, /forwarding for/, 'aggregated entries target forwarding hosts');
    else t.notMatch(r.stdout, /forwarding for/, 'every node has its own entry');
    t.same(namespacesOf(r.pid as number), [], 'no namespace left');
    t.same(trellisTemp(r.pid as number), [], 'no temp dir left');
    await until('its processes gone', () => processesOf(r.pid as number).length === 0, 3000, 100).catch(() => undefined);
    t.same(processesOf(r.pid as number), [], 'no process it started is left (their command lines name its temp dirs)');
  });
}

for (const [label, args, after] of [
  ['Ctrl-C while pods are being added', ['--nodes', '3', '--pods-per-node', '2'], /adding \d+ pod\(s\) per host/],
  ['Ctrl-C while kept running', ['--nodes', '3', '--pods-per-node', '1', '--keep'], /press Ctrl-C here/],
] as const) {
  t.test(`demo: ${label} removes everything`, { skip, timeout: 120_000 }, async (t) => {
    const child = spawn(process.execPath, [bin('examples/demo/demo'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? `exit ${code}`)));
    const deadline = Date.now() + 100_000;
    while (!after.test(out) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    t.match(out, after, 'reached the step to interrupt');
    if ((args as readonly string[]).includes('--keep')) {
      // The kept demo's hint: etcd on a loopback port of this namespace, for trellisctl as documented.
      const url = /export TRELLIS_ETCD_ENDPOINTS=(http:\/\/127\.0\.0\.1:\d+)\n/.exec(out)?.[1];
      t.ok(url, 'the hint names a loopback etcd endpoint');
      const ctl = spawnSync(process.execPath, [bin('src/cli/trellisctl'), 'nodes'], {
        encoding: 'utf8',
        env: { ...process.env, TRELLIS_ETCD_ENDPOINTS: url ?? '' },
        timeout: 30_000,
      });
      t.equal(ctl.status, 0, ctl.stderr);
      t.match(ctl.stdout, /h1-0/, 'trellisctl nodes from the host shell lists the demo nodes');
    }
    const pids = descendants(child.pid as number);
    child.kill('SIGINT');
    const how = await exited;
    // On a mismatch, say how it ended and what it printed last.
    t.equal(how, 'SIGINT', `ended by the signal, as an interrupted program does${how === 'SIGINT' ? '' : `; its output ended with:\n${out.slice(-3000)}`}`);
    t.match(out, /interrupted: removed everything the demo had created/);
    t.same(namespacesOf(child.pid as number), [], 'no namespace left');
    t.same(trellisTemp(child.pid as number), [], 'no temp dir left');
    // Killed processes may take a moment to be reaped: give them 3 s, then name any that is left.
    const left = (): string[] => pids.filter(isAlive).map((p) => `${p}: ${cmdline(p)}`);
    await until('its processes gone', () => left().length === 0, 3000, 100).catch(() => undefined);
    t.same(left(), [], 'no process it started is left (etcd, moto_server, trellisd)');
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
