// A minimal container runtime for the CNI tests: it installs the built plugin
// (the one-file bundle, as docs/cni.md installs it) in a temporary CNI_PATH
// directory (next to the
// reference plugins in /usr/lib/cni) and execs plugins exactly as libcni does —
// the executable named by `type`, found on CNI_PATH, with the CNI_* variables
// and the configuration on stdin — inside the namespace that plays the node's
// host namespace. Chains are run as libcni runs them: ADD in order with each
// result passed on as `prevResult`, CHECK in order with the final result, DEL
// in reverse order.
//
// Invariants: the plugin directory is removed when the test ends; nothing
// runs in this machine's own network namespace (every call names a lab
// namespace as the host).

import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, accessSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { readPrefix } from '../src/etcd/paged-range.js';
import { onTeardown, type Teardown } from './cleanup.js';
import { startEtcd, type EtcdServer } from './etcd.js';
import { Lab, type Netns } from './netns.js';
import { bin, daemon, seedTopology, type Daemon } from './trellis.js';

export const REFERENCE_PLUGINS = '/usr/lib/cni';

/** True when Debian's reference plugins are installed. */
export function haveReferencePlugins(): boolean {
  try {
    accessSync(join(REFERENCE_PLUGINS, 'portmap'), constants.X_OK);
    accessSync(join(REFERENCE_PLUGINS, 'ptp'), constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Installs the plugin as `dir/trellis` the way docs/cni.md does: the bundle
 * dist/cni/trellis.cjs with its first line naming this node by absolute path.
 */
export function installPlugin(dir: string, from = bin('cni/trellis.cjs')): string {
  const path = join(dir, 'trellis');
  const bundle = readFileSync(from, 'utf8');
  writeFileSync(path, `#!${process.execPath}\n${bundle.slice(bundle.indexOf('\n') + 1)}`);
  chmodSync(path, 0o755);
  return path;
}

/**
 * A temporary CNI_PATH holding the installed trellis plugin (this checkout's
 * bundle, or `bundle`), then /usr/lib/cni; removed at teardown.
 */
export function cniPath(t: Teardown, bundle?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-cni-bin-'));
  onTeardown(t, () => rmSync(dir, { recursive: true, force: true }));
  installPlugin(dir, bundle);
  return `${dir}:${REFERENCE_PLUGINS}`;
}

export interface Invocation {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
  /** The namespace (name under /var/run/netns) the plugin runs in: the node's host namespace. */
  hostNs: string;
  containerId?: string;
  netns?: string;
  ifName?: string;
  args?: string;
  path: string;
  /** The configuration: an object (serialised) or raw text. */
  config: Record<string, unknown> | string;
  /** Leave these CNI_* variables out entirely. */
  omit?: string[];
  /** Plugin type to exec; default the config's `type`. */
  type?: string;
}

export interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is. */
  json: Record<string, unknown> | undefined;
  ms: number;
}

function findPlugin(type: string, path: string): string {
  for (const dir of path.split(':')) {
    try {
      accessSync(join(dir, type), constants.X_OK);
      return join(dir, type);
    } catch {
      // next directory
    }
  }
  throw new Error(`plugin ${type} not found on CNI_PATH ${path}`);
}

/** Execs one plugin as the runtime does; resolves with its exit code and output. */
export function invoke(inv: Invocation): Promise<Outcome> {
  const text = typeof inv.config === 'string' ? inv.config : JSON.stringify(inv.config);
  const type = inv.type ?? (typeof inv.config === 'string' ? 'trellis' : String(inv.config.type));
  const vars: Record<string, string> = {
    CNI_COMMAND: inv.command,
    CNI_CONTAINERID: inv.containerId ?? '',
    CNI_NETNS: inv.netns ?? '',
    CNI_IFNAME: inv.ifName ?? 'eth0',
    CNI_ARGS: inv.args ?? '',
    CNI_PATH: inv.path,
  };
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const [k, v] of Object.entries(vars)) if (!(inv.omit ?? []).includes(k)) env[k] = v;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', inv.hostNs, findPlugin(type, inv.path)], { env, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() === '' ? undefined : (JSON.parse(stdout) as Record<string, unknown>);
      } catch {
        json = undefined;
      }
      resolve({ code, stdout, stderr, json, ms: performance.now() - started });
    });
    child.stdin.end(text);
  });
}

export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: Array<Record<string, unknown>>;
}

export interface Attachment {
  hostNs: string;
  containerId: string;
  netns: string;
  ifName?: string;
  args?: string;
  path: string;
  /** Capability arguments (e.g. portMappings), passed as runtimeConfig to plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
}

function pluginConfig(list: ConfList, plugin: Record<string, unknown>, att: Attachment, prevResult?: unknown): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  const caps = (plugin.capabilities ?? {}) as Record<string, boolean>;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(att.capabilityArgs ?? {})) if (caps[k] === true) runtimeConfig[k] = v;
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  if (prevResult !== undefined) conf.prevResult = prevResult;
  return conf;
}

function invokeIn(command: 'ADD' | 'DEL' | 'CHECK', att: Attachment, config: Record<string, unknown>): Promise<Outcome> {
  return invoke({ command, hostNs: att.hostNs, containerId: att.containerId, netns: att.netns, ifName: att.ifName ?? 'eth0', args: att.args ?? '', path: att.path, config });
}

/** ADD of a configuration list: the final result, or the first failing plugin's outcome. */
export async function addList(list: ConfList, att: Attachment): Promise<{ ok: boolean; result: Record<string, unknown> | undefined; failed?: Outcome }> {
  let prev: Record<string, unknown> | undefined;
  for (const plugin of list.plugins) {
    const out = await invokeIn('ADD', att, pluginConfig(list, plugin, att, prev));
    if (out.code !== 0 || out.json === undefined) return { ok: false, result: undefined, failed: out };
    prev = out.json;
  }
  return { ok: true, result: prev };
}

/** CHECK of a configuration list against the cached result. */
export async function checkList(list: ConfList, att: Attachment, result: Record<string, unknown>): Promise<Outcome[]> {
  const outs: Outcome[] = [];
  for (const plugin of list.plugins) outs.push(await invokeIn('CHECK', att, pluginConfig(list, plugin, att, result)));
  return outs;
}

/** DEL of a configuration list, in reverse order, with the cached result when there is one. */
export async function delList(list: ConfList, att: Attachment, result?: Record<string, unknown>): Promise<Outcome[]> {
  const outs: Outcome[] = [];
  for (const plugin of [...list.plugins].reverse()) outs.push(await invokeIn('DEL', att, pluginConfig(list, plugin, att, result)));
  return outs;
}

/** Allocations recorded in etcd (the PodAddress records under ipam/): address → allocation. */
export async function etcdAllocations(endpoint: string, prefix = '/trellis'): Promise<Map<string, { containerId: string; ifName: string; network?: string }>> {
  const client = new Etcd3({ hosts: endpoint });
  try {
    const { kvs } = await readPrefix(client, `${prefix}/v1/ipam/`);
    const out = new Map<string, { containerId: string; ifName: string; network?: string }>();
    for (const kv of kvs) {
      const record = JSON.parse(kv.value.toString()) as { address: string; allocation?: { containerId: string; ifName: string; network?: string } };
      if (record.allocation !== undefined) out.set(record.address, record.allocation);
    }
    return out;
  } finally {
    client.close();
  }
}

/** Lines of `ip -o link show` in `ns` whose name has the plugin's veth prefix. */
export async function pluginVeths(ns: string): Promise<string[]> {
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('ip', ['-n', ns, '-o', 'link', 'show'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
    child.once('error', reject);
    child.once('close', () => resolve(text));
  });
  return out
    .split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '')
    .filter((n) => n.startsWith('trl'));
}

export interface CniNode {
  etcd: EtcdServer;
  daemon: Daemon;
  /** trellisd's IPAM socket. */
  socket: string;
  lab: Lab;
  /** The namespace playing the node's host namespace (198.18.1.60/32 on its loopback). */
  host: Netns;
  /** CNI_PATH: the installed trellis plugin, then the reference plugins. */
  path: string;
}

/**
 * One node: etcd on loopback with the sample topology, trellisd in this
 * namespace (routes off, as every test daemon outside a lab namespace) serving
 * its IPAM socket, and a lab namespace where the plugin runs as on a host.
 * The socket is a file, so the plugin reaches it from any network namespace.
 */
export async function cniNode(
  t: Teardown,
  opts: { nodeName?: string; topology?: string; hostIP?: string; beforeDaemon?: (endpoint: string) => Promise<void> } = {},
): Promise<CniNode> {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint, opts.topology);
  await opts.beforeDaemon?.(etcd.endpoint);
  const d = daemon(t, { etcd: etcd.endpoint, nodeName: opts.nodeName ?? 'cni-node', hostIP: opts.hostIP ?? '198.18.1.60', args: ['--ipam-address-rest', '0s'] });
  await d.start('IPAM API listening');
  const lab = new Lab(t);
  const host = await lab.ns('host');
  await lab.addr(host, 'lo', `${opts.hostIP ?? '198.18.1.60'}/32`);
  return { etcd, daemon: d, socket: join(d.stateDir, 'trellisd.sock'), lab, host, path: cniPath(t) };
}
