// `npm run demo`: a whole Trellis cluster on this machine, on real packets.
//
// etcd and moto_server (the EC2 API) run in a "VPC router" network namespace
// whose kernel forwards between three subnets exactly as moto's route tables
// say (see vpc-router.ts); N host namespaces, three subnets of them, each run
// trellisd (VPC advertisers on); a few pods per host get their addresses and
// veths from the trellis CNI plugin. Once the route tables and the hosts'
// routes have converged, it prints the topology, the advertisements, every
// VPC route table and a pod-to-pod ping matrix, same subnet and across.
// Everything it creates goes away on exit, Ctrl-C included.

import { parseArgs } from 'node:util';
import { comparePrefix, contains, parsePrefix } from '../../src/core/cidr.js';
import { main as trellisctl } from '../../src/cli/main.js';
import { registerCleanup, sweepTempDirs } from '../../lab/cleanup.js';
import { sweepStaleNamespaces, type Netns } from '../../lab/netns.js';
import { motoServerPath } from '../../lab/moto.js';
import { intoNamespace } from '../../lab/ns-forward.js';
import { which } from '../../lab/pids.js';
import { sweepStalePortLocks } from '../../lab/ports.js';
import { defaultStartParallelism, waitProgress } from '../../lab/progress.js';
import { buildVpcLab, type VpcLab } from '../../lab/vpc-lab.js';
import { addPods, pingMatrix } from './pods.js';
import { VpcRouter } from './vpc-router.js';

const USAGE = `Usage: npm run demo -- [--nodes N] [--pods-per-node N] [--route-limit N] [--etcd-members N] [--keep]

Builds a Trellis cluster in network namespaces on this machine (as root):
etcd and moto_server (EC2) in a VPC-router namespace that forwards by moto's
route tables, N hosts in three subnets running trellisd, pods wired by the
trellis CNI plugin; waits for convergence, prints the topology, the
advertisements, the VPC route tables and a pod-to-pod ping matrix, and
removes everything it made.

Options:
  --nodes N           hosts, spread over three subnets (default 9)
  --pods-per-node N   pods per host (default 2)
  --route-limit N     entries per VPC route table (default 500; e.g. 4 forces
                      aggregation: pods are then reached through forwarding hosts)
  --etcd-members N    etcd members, 1 or 3 or 5 (default 1); every trellisd and
                      trellisctl is given all of them
  --keep              stay up for inspection with trellisctl and etcdctl until Ctrl-C
                      (etcd is exposed at http://127.0.0.1:23790, or another
                      free port when that one is taken; the demo prints it)
  --bgp               instead: BGP export to a BIRD upstream router, outside client → every
                      pod, with a prefix limit of 100 and of 3 (docs/bgp.md)
  --cleanup           remove what an interrupted demo left behind, and exit
  -h, --help          this help
`;

/** Loopback port of the kept demo's etcd (any free port when this one is taken). */
const DEMO_ETCD_PORT = 23790;

// The AWS SDK warns about Node 20 on its first use; the demo's readers need not see it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const started = Date.now();
const step = (what: string): void => void process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${what}\n`);
const section = (title: string): void => void process.stdout.write(`\n== ${title}\n`);

function parse(argv: string[]): { nodes: number; pods: number; limit: number; members: number; keep: boolean; cleanup: boolean } | string {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        nodes: { type: 'string' },
        'pods-per-node': { type: 'string' },
        'route-limit': { type: 'string' },
        'etcd-members': { type: 'string' },
        keep: { type: 'boolean' },
        cleanup: { type: 'boolean' },
        bgp: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    return `${(err as Error).message}\n\n${USAGE}`;
  }
  if (v.help === true) return USAGE;
  const num = (name: string, text: string | undefined, def: number, min: number, max: number): number => {
    const n = text === undefined ? def : Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}, got ${text}`);
    return n;
  };
  const odd = (n: number): number => {
    if (n % 2 === 0) throw new Error(`--etcd-members must be odd (1, 3 or 5: an even count adds no fault tolerance), got ${n}`);
    return n;
  };
  try {
    return {
      nodes: num('nodes', v.nodes, 9, 3, 60),
      pods: num('pods-per-node', v['pods-per-node'], 2, 1, 10),
      limit: num('route-limit', v['route-limit'], 500, 4, 1000),
      members: odd(num('etcd-members', v['etcd-members'], 1, 1, 5)),
      keep: v.keep === true,
      cleanup: v.cleanup === true,
    };
  } catch (err) {
    return `${(err as Error).message}\n`;
  }
}

/**
 * What is still missing before the cluster has converged, one line per item:
 * VPC route table entries covering every block, then (once the tables are
 * complete) on every host a kernel route to each block of its subnet's
 * other hosts. Hosts found complete are remembered in `done`.
 */
async function outstanding(v: VpcLab, router: VpcRouter, done: Set<string>): Promise<string[]> {
  const missing: string[] = [];
  const tables = await v.entries();
  const blocks = await v.lab.blocksOf();
  for (const [rtb, entries] of tables) {
    const uncovered = blocks.filter((b) => !entries.some((e) => contains(parsePrefix(e.destination), parsePrefix(b.prefix))));
    if (uncovered.length > 0) missing.push(`route table ${rtb}: no entry covers ${uncovered.map((b) => `${b.prefix} (${b.node})`).join(', ')}`);
  }
  const unclaimed = v.hosts.filter((h) => !blocks.some((b) => b.node === h.name));
  if (unclaimed.length > 0) missing.push(`no block claimed yet by ${unclaimed.map((h) => h.name).join(', ')}`);
  await router.sync();
  if (missing.length > 0) return missing;
  const pending = v.hosts.filter((h) => !done.has(h.name));
  let next = 0;
  const check = async (): Promise<void> => {
    while (next < pending.length) {
      const h = pending[next++]!;
      const routes = (await v.lab.kernelRoutes(h, { protocol: 84 })).map((r) => r.dst);
      const peers = blocks.filter((b) => b.subnet === h.subnet && b.node !== h.name);
      const absent = peers.filter((b) => !routes.some((d) => d.includes('/') && contains(parsePrefix(d), parsePrefix(b.prefix))));
      if (absent.length === 0) done.add(h.name);
      else missing.push(`${h.name}: no kernel route to ${absent.map((b) => `${b.prefix} (${b.node})`).join(', ')}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, check));
  return missing.sort();
}

async function run(opts: { nodes: number; pods: number; limit: number; members: number; keep: boolean }): Promise<number> {
  const perSubnet = Math.ceil(opts.nodes / 3);
  if (perSubnet * 3 !== opts.nodes) step(`--nodes ${opts.nodes}: using ${perSubnet * 3}, three subnets of ${perSubnet}`);
  // Ctrl-C: the helpers' cleanup registry removes namespaces, processes and
  // directories synchronously, newest first; this one, registered first, runs last.
  let interrupted = false;
  const unregister = registerCleanup(() => {
    interrupted = true;
    step('interrupted: removed everything the demo had created');
  });
  step(`building the lab: VPC router, three subnet bridges, host namespaces, etcd${opts.members > 1 ? ` (${opts.members} members)` : ''} and moto_server`);
  // Sixty hosts' ARP entries overflow the machine's one neighbour table (see ClusterLabOptions.staticNeighbours).
  const v = await buildVpcLab(undefined, { subnets: 3, hostsPerSubnet: perSubnet, gatewayRoutes: false, etcdMembers: opts.members, cluster: { staticNeighbours: true } });
  let router: VpcRouter | undefined;
  try {
    const subnets = [...v.tables.keys()];
    step(`VPC ${v.vpcId} with route tables ${[...v.tables.values()].join(', ')}; ${v.hosts.length} instances`);
    router = new VpcRouter({
      lab: v.lab.lab,
      router: v.lab.router as Netns,
      ec2: v.ec2,
      tables: subnets.map((s, i) => ({ id: v.tables.get(s) as string, bridge: `br${i + 1}` })),
      instances: new Map(v.hosts.map((h) => [v.instances.get(h.name) as string, { ip: h.hostIP, bridge: `br${subnets.indexOf(h.subnet) + 1}` }])),
      interfaces: v.interfaces,
      network: v.lab.topology.network,
    });
    await router.start();
    const parallel = defaultStartParallelism();
    step(`starting ${v.hosts.length} trellisd, ${parallel} at a time (route limit ${opts.limit} per table)`);
    // Each start has its own budget from its own spawn (a loaded machine may
    // need more than the lab's default); the batches keep it independent of N.
    await v.start(v.hosts, ['--vpc-route-limit', String(opts.limit), '--vpc-recover-after', '2s'], parallel, 90_000);
    step(`adding ${opts.pods} pod(s) per host through the trellis CNI plugin`);
    const pods = await addPods(v, opts.pods, parallel);
    step('waiting for the VPC route tables to cover every block and for the hosts to converge');
    const done = new Set<string>();
    const took = await waitProgress('convergence (VPC route tables and host routes)', () => outstanding(v, router as VpcRouter, done), { stallMs: 30_000 });
    step(`converged in ${(took / 1000).toFixed(1)} s`);

    const etcd = ['--etcd-endpoints', v.lab.endpoint];
    const inRouter = async (argv: string[]): Promise<void> => {
      process.stdout.write(await v.lab.lab.exec(v.lab.router, process.execPath, [process.argv[1] as string, '--ctl', ...argv]));
    };
    section('topology (trellisctl topology show)');
    await inRouter(['topology', 'show', ...etcd]);
    section('advertisements (trellisctl routes)');
    await inRouter(['routes', ...etcd]);
    section(`VPC route tables (limit ${opts.limit}; entries owned by Trellis)`);
    const blocks = await v.lab.blocksOf();
    let forwarded = 0;
    for (const [rtb, entries] of await v.entries()) {
      const subnet = [...v.tables].find(([, id]) => id === rtb)?.[0];
      process.stdout.write(`${rtb} (${subnet}):\n`);
      const sorted = [...entries].sort((a, b) => comparePrefix(parsePrefix(a.destination), parsePrefix(b.destination)));
      for (const e of sorted) {
        const target = v.hostOfInstance(e.target)?.name ?? '?';
        const owners = [...new Set(blocks.filter((b) => contains(parsePrefix(e.destination), parsePrefix(b.prefix))).map((b) => b.node))];
        const others = owners.filter((o) => o !== target);
        forwarded += others.length;
        const note = others.length > 0 ? `, forwarding for ${others.join(' ')}` : '';
        process.stdout.write(`  ${e.destination.padEnd(18)} -> ${e.target} (${target}${note})\n`);
      }
    }
    if (forwarded > 0) {
      process.stdout.write('Aggregated entries: traffic for those pods enters their subnet at the forwarding host, which delivers on its direct route.\n');
    }
    section('pod-to-pod ping matrix (one echo each; rows ping columns)');
    const { text, ok, total } = await pingMatrix(v, pods);
    process.stdout.write(text);
    process.stdout.write(`\n${ok}/${total} pings answered${ok === total ? ': all green' : ''}\n`);
    if (opts.keep) {
      // etcd listens inside the router namespace; a forwarder on a loopback
      // port of this namespace lets trellisctl and etcdctl reach it from the
      // shell. It goes away with the rest (cleanup registry, Ctrl-C included).
      const inside = new URL(v.lab.endpoint);
      const expose = (port: number) => intoNamespace(undefined, v.lab.router.name, inside.hostname, Number(inside.port), port);
      const fwd = await expose(DEMO_ETCD_PORT).catch(() => expose(0));
      const local = `http://127.0.0.1:${fwd.port}`;
      section('kept running');
      process.stdout.write(
        `etcd is reachable from this machine at ${local}. In another shell, in this checkout:\n` +
          `  export TRELLIS_ETCD_ENDPOINTS=${local}\n` +
          `  npx trellisctl nodes\n` +
          `  npx trellisctl ipam\n` +
          `  npx trellisctl vpc status\n` +
          `  etcdctl --endpoints ${local} get --prefix /trellis/v1/routes/\n` +
          `a host:  ip netns exec ${v.hosts[0]?.ns.name} ip route show proto 84\n` +
          'teardown: press Ctrl-C here (if this process was killed instead: npm run demo -- --cleanup)\n',
      );
      // Until Ctrl-C (or SIGTERM): the cleanup registry then removes everything
      // and the process ends by that signal. Only a timer keeps it waiting.
      await new Promise<void>(() => setInterval(() => undefined, 1 << 30));
    }
    return ok === total ? 0 : 1;
  } finally {
    unregister();
    if (!interrupted) {
      step('tearing down');
      await router?.stop();
      await v.destroy();
      step('done: nothing left behind');
    }
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--ctl') return trellisctl(argv.slice(1)); // trellisctl run inside the router namespace
  if (argv.includes('--bgp') && process.getuid?.() === 0) return (await import('./bgp-demo.js')).runBgpDemo();
  const opts = parse(argv);
  if (typeof opts === 'string') {
    if (opts === USAGE) process.stdout.write(opts);
    else process.stderr.write(`demo: ${opts}`);
    return opts === USAGE ? 0 : 2;
  }
  if (opts.cleanup) {
    const gone = sweepStaleNamespaces();
    process.stdout.write(`removed ${gone.length} namespace(s) left by interrupted runs${gone.length > 0 ? `: ${gone.join(' ')}` : ''}\n`);
    const dirs = sweepTempDirs();
    sweepStalePortLocks();
    process.stdout.write(`removed ${dirs.length} temporary director${dirs.length === 1 ? 'y' : 'ies'} of processes that are gone${dirs.length > 0 ? `: ${dirs.join(' ')}` : ''}\n`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('demo: needs root (it creates network namespaces); run: sudo npm run demo\n');
    return 1;
  }
  const missing = [
    ...['ip', 'nsenter', 'ping', 'etcd', 'etcdctl', 'curl'].filter((c) => which(c) === undefined),
    ...(motoServerPath() === undefined ? ['moto_server'] : []),
  ];
  if (missing.length > 0) {
    process.stderr.write(`demo: not installed: ${missing.join(', ')} (run: bash .ci/install-packages)\n`);
    return 1;
  }
  return run(opts);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
