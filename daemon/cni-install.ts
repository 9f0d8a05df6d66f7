// Installing the trellis CNI plugin and its network configuration on this
// node (cni.install): the bundled plugin (dist/cni/trellis.cjs, its `#!` line
// naming this node runtime by absolute path; from the image, a /bin/sh
// wrapper running it with the image's node and libraries copied into
// cni.binDir/trellis.d, as the host may have no Node.js) into cni.binDir, then the
// configuration list (trellis + portmap + bandwidth, with the IPAM socket and
// the veth MTU filled in) into cni.confDir. trellisd does it once it is ready,
// so a runtime never finds the configuration before trellisd can serve it;
// `trellisd --withdraw` removes the configuration list.
//
// Invariants:
//  * Every file is written beside its destination under a name no runtime
//    loads (leading dot, no .conf/.conflist/.json ending), fsynced, then
//    renamed over the destination: a reader sees the old file or the new one,
//    never half of one. The plugin goes in before the configuration list.
//  * A plugin executable or configuration list of the same name that this
//    installer did not write is never overwritten (nor removed) unless
//    cni.replaceExisting; the refusal names the file.
//  * A file already holding exactly the wanted content is left untouched.

import { execFile } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import type { TrellisConfig } from '../src/config/load.js';
import { ErrorCode, TrellisError } from '../src/errors.js';
import { VERSION } from '../src/version.js';

/** Second line of an installed plugin (after `// ` or `# `): how the installer recognises its own file. */
export const PLUGIN_MARK = 'trellis CNI plugin, installed by trellisd';
/**
 * Written into the image by deploy/image/build.sh beside dist/: the paths of
 * the image's node, its shared libraries and the dynamic loader. When present
 * (trellisd runs from the image), the plugin is installed with its own copy
 * of that runtime, since the node may have no Node.js of its own.
 */
export const RUNTIME_LIST = 'runtime.list';
/** The plugin's name in the configuration list and in cni.binDir. */
export const PLUGIN_TYPE = 'trellis';
export const NETWORK_NAME = 'trellis';

export interface CniInstallOptions {
  /** The plugin bundle; default dist/cni/trellis.cjs beside this module's dist/daemon/. */
  bundle?: string;
  /** The node executable the plugin's `#!` line names; default this process's. */
  node?: string;
  /** A runtime list (see RUNTIME_LIST) to install with the plugin; default the image's, if any. */
  runtimeList?: string;
}

/** The image's runtime list (`<package>/runtime.list`), when trellisd runs from the image. */
export function defaultRuntimeList(): string | undefined {
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', '..', RUNTIME_LIST);
  return existsSync(path) ? path : undefined;
}

/**
 * Copy the runtime named by `list` (lines `loader PATH`, `node PATH`, `lib PATH`)
 * and the bundle into `dir`; returns the plugin text: a /bin/sh wrapper that
 * runs the bundle with that node through that loader.
 */
function installRuntime(list: string, dir: string, bundle: string, written: string[]): string {
  mkdirSync(join(dir, 'lib'), { recursive: true });
  const put = (to: string, data: Buffer | string, mode: number): void => {
    const have = existsSync(to) ? readFileSync(to) : undefined;
    if (have !== undefined && have.equals(Buffer.from(data))) return;
    writeAtomic(to, data, mode);
    written.push(to);
  };
  let loader = '';
  let node = '';
  for (const line of readFileSync(list, 'utf8').split('\n')) {
    const [kind, path] = line.trim().split(/\s+/, 2);
    if (kind === undefined || path === undefined || kind.startsWith('#')) continue;
    const name = kind === 'lib' ? join('lib', basename(path)) : kind;
    put(join(dir, name), readFileSync(path), 0o755);
    if (kind === 'loader') loader = join(dir, name);
    if (kind === 'node') node = join(dir, name);
  }
  if (loader === '' || node === '') throw new TrellisError(ErrorCode.Internal, `${list} names no loader or no node`);
  put(join(dir, 'trellis.cjs'), bundle, 0o644);
  const q = (p: string): string => `'${p.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh\n# ${PLUGIN_MARK} ${VERSION}\nexec ${q(loader)} --library-path ${q(join(dir, 'lib'))} ${q(node)} ${q(join(dir, 'trellis.cjs'))} "$@"\n`;
}

export interface Installed {
  plugin: string;
  conflist: string;
  mtu: number;
  /** Files that changed (empty when everything was already in place). */
  written: string[];
}

/** The bundled plugin next to this module (dist/daemon → dist/cni), or under dist/ when run from the sources. */
export function defaultBundle(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', 'cni', 'trellis.cjs'), join(here, '..', 'dist', 'cni', 'trellis.cjs')];
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

/** The plugin executable's text: `#!node`, the mark, then the bundle without its own `#!` line. */
export function pluginText(bundle: string, node: string): string {
  const body = bundle.startsWith('#!') ? bundle.slice(bundle.indexOf('\n') + 1) : bundle;
  return `#!${node}\n// ${PLUGIN_MARK} ${VERSION}\n${body}`;
}

/** The configuration list trellisd installs. */
export function conflist(opts: { socket: string; mtu: number }): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: NETWORK_NAME,
    plugins: [
      { type: PLUGIN_TYPE, socket: opts.socket, mtu: opts.mtu, timeoutMs: 10000 },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      { type: 'bandwidth', capabilities: { bandwidth: true } },
    ],
  };
}

function isOurPlugin(text: string): boolean {
  const second = text.split('\n', 2)[1] ?? '';
  return second.startsWith(`// ${PLUGIN_MARK}`) || second.startsWith(`# ${PLUGIN_MARK}`);
}

function isOurConflist(text: string): boolean {
  try {
    const doc = JSON.parse(text) as { name?: unknown; plugins?: Array<{ type?: unknown }> };
    return doc.name === NETWORK_NAME && Array.isArray(doc.plugins) && doc.plugins[0]?.type === PLUGIN_TYPE;
  } catch {
    return false;
  }
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TrellisError(ErrorCode.Unavailable, `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Write `text` to `path` atomically: temporary file beside it, fsync, rename, fsync of the directory. */
export function writeAtomic(path: string, text: string | Buffer, mode: number): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${path.slice(dir.length + 1)}.tmp-${process.pid}`);
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new TrellisError(ErrorCode.Unavailable, `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

function refuse(path: string, what: string): never {
  throw new TrellisError(
    ErrorCode.Config,
    `${path} exists and is not ${what} written by trellisd (another network's?): not overwriting it; remove it or set cni.replaceExisting`,
    { details: { path } },
  );
}

/** MTU of `iface` in this network namespace (from `ip -j link show`). */
export async function interfaceMtu(iface: string): Promise<number> {
  try {
    const { stdout } = await promisify(execFile)('ip', ['-j', 'link', 'show', 'dev', iface], { encoding: 'utf8' });
    const mtu = (JSON.parse(stdout) as Array<{ mtu?: number }>)[0]?.mtu;
    if (typeof mtu === 'number') return mtu;
  } catch (err) {
    throw new TrellisError(ErrorCode.Config, `cannot read the MTU of interface ${iface} (set cni.mtu): ${(err as Error).message}`, { cause: err });
  }
  throw new TrellisError(ErrorCode.Config, `interface ${iface} reports no MTU (set cni.mtu)`);
}

/** Install the plugin, then the configuration list. Throws E_CONFIG on another network's file. */
export async function installCni(config: TrellisConfig, log: Logger, options: CniInstallOptions = {}): Promise<Installed> {
  const { cni } = config;
  if (config.ipam.socket === '') throw new TrellisError(ErrorCode.Config, 'cni.install needs the IPAM API: ipam.socket must not be empty');
  // A veth MTU is at most 65535 (loopback reports 65536).
  const mtu = cni.mtu ?? Math.min(65535, await interfaceMtu(config.interface));
  const bundlePath = options.bundle ?? defaultBundle();
  const bundle = readIfExists(bundlePath);
  if (bundle === undefined) throw new TrellisError(ErrorCode.NotFound, `the CNI plugin bundle ${bundlePath} is missing`);
  const plugin = join(cni.binDir, PLUGIN_TYPE);
  const list = join(cni.confDir, cni.confName);
  const wantList = `${JSON.stringify(conflist({ socket: config.ipam.socket, mtu }), null, 2)}\n`;
  const havePlugin = readIfExists(plugin);
  const haveList = readIfExists(list);
  if (!cni.replaceExisting) {
    if (havePlugin !== undefined && !isOurPlugin(havePlugin)) refuse(plugin, 'a trellis plugin');
    if (haveList !== undefined && !isOurConflist(haveList)) refuse(list, 'a trellis configuration list');
  }
  const written: string[] = [];
  const runtimeList = options.runtimeList ?? (options.node === undefined ? defaultRuntimeList() : undefined);
  const wantPlugin =
    runtimeList === undefined ? pluginText(bundle, options.node ?? process.execPath) : installRuntime(runtimeList, join(cni.binDir, `${PLUGIN_TYPE}.d`), bundle, written);
  if (havePlugin !== wantPlugin) {
    writeAtomic(plugin, wantPlugin, 0o755);
    written.push(plugin);
  }
  if (haveList !== wantList) {
    writeAtomic(list, wantList, 0o644);
    written.push(list);
  }
  const before = shadowingConfigs(cni.confDir, cni.confName);
  if (before.length > 0) log.warn({ files: before, confDir: cni.confDir }, `runtimes use the first configuration in name order: ${before.join(', ')} come before ${cni.confName}`);
  log.info({ plugin, conflist: list, mtu, changed: written.length > 0 }, 'CNI plugin and configuration installed');
  return { plugin, conflist: list, mtu, written };
}

/** Network configurations in `dir` that a runtime would pick before `name`. */
export function shadowingConfigs(dir: string, name: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.filter((f) => /\.(conf|conflist|json)$/.test(f) && f < name).sort();
}

/** Remove the configuration list if this installer wrote it; the plugin executable stays (pods still need DEL). */
export function removeConflist(config: TrellisConfig, log: Logger): boolean {
  const list = join(config.cni.confDir, config.cni.confName);
  const have = readIfExists(list);
  if (have === undefined) return false;
  if (!isOurConflist(have) && !config.cni.replaceExisting) {
    log.warn({ conflist: list }, 'not removing a configuration list trellisd did not write');
    return false;
  }
  rmSync(list, { force: true });
  log.info({ conflist: list }, 'CNI configuration list removed');
  return true;
}

/**
 * Wait until `ready()` reports nothing missing, then install. Resolves
 * undefined if `stopped()` turns true first.
 */
export async function installWhenReady(
  config: TrellisConfig,
  log: Logger,
  ready: () => string | undefined,
  stopped: () => boolean,
  options: CniInstallOptions = {},
): Promise<Installed | undefined> {
  let last: string | undefined;
  for (;;) {
    if (stopped()) return undefined;
    const reason = ready();
    if (reason === undefined) break;
    if (reason !== last) log.info({ reason }, 'CNI configuration waits until trellisd is ready');
    last = reason;
    await new Promise((r) => setTimeout(r, 200));
  }
  return installCni(config, log, options);
}
