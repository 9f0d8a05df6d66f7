// The demo's pods: each a network namespace wired by the trellis CNI plugin,
// called exactly as a container runtime calls it (CNI_* environment, network
// configuration on stdin) inside its host's namespace, against that host's
// trellisd. And the ping matrix between them.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { LabHost } from '../../lab/cluster-lab.js';
import type { Netns } from '../../lab/netns.js';
import { bin } from '../../lab/trellis.js';
import type { VpcLab } from '../../lab/vpc-lab.js';

export interface DemoPod {
  readonly name: string;
  readonly host: LabHost;
  readonly ns: Netns;
  readonly address: string;
}

function runPlugin(host: LabHost, env: Record<string, string>, conf: unknown): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', host.ns.name, process.execPath, bin('cni/trellis.cjs')], {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`CNI ADD on ${host.name} failed: ${out.trim()}`))));
    // A plugin killed before it read its config (Ctrl-C's cleanup) closes the
    // pipe: its exit code is the answer, the EPIPE is not a crash.
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify(conf));
  });
}

/** Pod `k` of `host`: a namespace, then CNI ADD for it. */
export async function addPod(v: VpcLab, host: LabHost, k: number): Promise<DemoPod> {
  const name = `${host.name}-p${k}`;
  const ns = await v.lab.lab.ns(`pod${host.index}x${k}`);
  const daemon = v.daemons.get(host.name);
  if (daemon === undefined) throw new Error(`no trellisd on ${host.name}`);
  const result = await runPlugin(
    host,
    {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: `demo-${name}`,
      CNI_NETNS: `/var/run/netns/${ns.name}`,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `K8S_POD_NAMESPACE=demo;K8S_POD_NAME=${name}`,
      CNI_PATH: '/usr/lib/cni',
    },
    // A busy machine running sixty daemons may take longer than the plugin's default 10 s to answer.
    { cniVersion: '1.0.0', name: 'trellis-demo', type: 'trellis', socket: join(daemon.stateDir, 'trellisd.sock'), timeoutMs: 60_000 },
  );
  const address = ((JSON.parse(result) as { ips: Array<{ address: string }> }).ips[0]?.address ?? '').split('/')[0] ?? '';
  return { name, host, ns, address };
}

/** `perHost` pods on every host, `parallel` CNI ADDs at a time; in host order. */
export async function addPods(v: VpcLab, perHost: number, parallel: number): Promise<DemoPod[]> {
  const jobs = v.hosts.flatMap((h) => Array.from({ length: perHost }, (_, k) => [h, k] as const));
  const pods: DemoPod[] = new Array<DemoPod>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      const [h, k] = jobs[i]!;
      pods[i] = await addPod(v, h, k);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return pods;
}

/**
 * Pings from `from` to each of `targets` once (one echo, 1 s to answer), all
 * from one shell in the pod's namespace: one process start per source pod,
 * not per pair. True per target that answered.
 */
async function pingEach(v: VpcLab, from: DemoPod, targets: readonly DemoPod[], count = 1): Promise<boolean[]> {
  for (const t of targets) if (!/^100\.\d+\.\d+\.\d+$/.test(t.address)) throw new Error(`ping ${t.address}: not a pod address`);
  const wait = count === 1 ? 1 : 2;
  const script = `for a in "$@"; do if ping -n -q -c ${count} -i 0.5 -W ${wait} "$a" >/dev/null 2>&1; then echo ok; else echo no; fi; done`;
  const out = await v.lab.lab.exec(from.ns, 'sh', ['-c', script, 'sh', ...targets.map((t) => t.address)], { timeoutMs: targets.length * (count * 500 + wait * 1000 + 500) + 10_000 });
  const lines = out.trim().split('\n');
  return targets.map((_, i) => lines[i] === 'ok');
}

/** Every pod pings every other pod once (8 source pods at a time); a matrix of hosts' first pods and the totals. */
export async function pingMatrix(v: VpcLab, pods: readonly DemoPod[]): Promise<{ text: string; ok: number; total: number }> {
  const pairs = pods.flatMap((a) => pods.filter((b) => b !== a).map((b) => [a, b] as const));
  const result = new Map<string, boolean>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < pods.length) {
      const a = pods[next++]!;
      const targets = pods.filter((b) => b !== a);
      const answered = await pingEach(v, a, targets);
      targets.forEach((b, i) => result.set(`${a.name}>${b.name}`, answered[i] === true));
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  // A lone echo can be lost to a busy machine (neighbour resolution on a
  // loaded host): pairs that did not answer get one more try of four echoes
  // half a second apart, each given 2 s, eight sources at a time, and the
  // summary says how many needed it.
  let retried = 0;
  const again = pods.filter((a) => pods.some((b) => b !== a && result.get(`${a.name}>${b.name}`) !== true));
  let nextAgain = 0;
  const retry = async (): Promise<void> => {
    while (nextAgain < again.length) {
      const a = again[nextAgain++]!;
      const targets = pods.filter((b) => b !== a && result.get(`${a.name}>${b.name}`) !== true);
      const answered = await pingEach(v, a, targets, 4);
      targets.forEach((b, i) => {
        if (answered[i] === true) (result.set(`${a.name}>${b.name}`, true), retried++);
      });
    }
  };
  await Promise.all(Array.from({ length: 8 }, retry));
  const firsts = pods.filter((p) => p.name.endsWith('-p0'));
  const width = Math.max(...firsts.map((p) => p.name.length));
  const lines = [`${''.padEnd(width)}  ${firsts.map((p) => p.host.name.padStart(5)).join(' ')}`];
  for (const a of firsts) {
    const cells = firsts.map((b) => (a === b ? '  -  ' : result.get(`${a.name}>${b.name}`) === true ? '  ok ' : ' FAIL'));
    lines.push(`${a.name.padEnd(width)}  ${cells.join(' ')}`);
  }
  const ok = [...result.values()].filter(Boolean).length;
  const sameSubnet = pairs.filter(([a, b]) => a.host.subnet === b.host.subnet);
  const okSame = sameSubnet.filter(([a, b]) => result.get(`${a.name}>${b.name}`) === true).length;
  lines.push(
    '',
    `all ${pods.length} pods (${pairs.length} pairs): same subnet ${okSame}/${sameSubnet.length}, ` +
      `across subnets ${ok - okSame}/${pairs.length - sameSubnet.length}` +
      (retried > 0 ? ` (${retried} answered only on a second try of 4 echoes)` : ''),
  );
  for (const [k, good] of result) if (!good) lines.push(`  no answer: ${k.replace('>', ' -> ')}`);
  return { text: `${lines.join('\n')}\n`, ok, total: pairs.length };
}
