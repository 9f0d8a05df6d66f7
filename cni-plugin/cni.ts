// The CNI protocol side of the trellis plugin: error codes, spec versions, the
// environment and network configuration it is called with, and the result
// shapes it prints for each spec version.
//
// Invariants:
//  * Imports nothing: every command loads this module, so it must stay cheap.
//  * Every failure the plugin reports is a CniError carrying a spec code
//    (1-11, 50) or a Trellis code (100+), a one-line message and no stack.
//  * Validation follows libcni's skel: environment first, then the JSON, then
//    the network name, then the version, so the same input fails the same way.

import type { AllocateRequest } from '../src/gen/trellis/v1/ipam_api_pb.js';

export const SUPPORTED_VERSIONS: readonly string[] = ['0.4.0', '1.0.0', '1.1.0'];
/** The spec version the plugin speaks; VERSION answers with it. */
export const SPEC_VERSION = '1.1.0';
/** The pod's on-link gateway: the host side of every veth answers for it. */
export const GATEWAY = '169.254.1.1';
export const DEFAULT_SOCKET = '/run/trellis/trellisd.sock';
export const DEFAULT_TIMEOUT_MS = 10_000;

export const Code = {
  /** cniVersion of the configuration is not supported (or too old for the command). */
  IncompatibleVersion: 1,
  /** The configuration has a field the plugin cannot honour. */
  UnsupportedField: 2,
  /** The container (its network namespace) does not exist: nothing to clean up. */
  UnknownContainer: 3,
  /** A required CNI_* variable is missing or malformed. */
  InvalidEnvironment: 4,
  /** Reading standard input failed. */
  IoFailure: 5,
  /** Standard input is not valid JSON. */
  DecodingFailure: 6,
  /** The network configuration is invalid. */
  InvalidConfig: 7,
  /** Transient: trellisd is busy, not ready yet or lost a race; retry. */
  TryAgainLater: 11,
  /** STATUS: the plugin cannot serve ADD now. */
  NotAvailable: 50,
  /** trellisd does not answer on its socket (not running, wrong `socket`, timeout). */
  TrellisdUnreachable: 100,
  /** trellisd has no free address (the subnet's pod prefix is full). */
  Exhausted: 101,
  /** CNI_NETNS exists but cannot be used: not a network namespace, or the host's own. */
  NetnsUnusable: 102,
  /** The kernel (through iproute2) refused a change. */
  KernelRefused: 103,
  /** CHECK: the interface, address or routes differ from what ADD set up. */
  CheckFailed: 104,
  /** CHECK: trellisd holds no allocation at that address for this attachment. */
  AllocationMissing: 105,
  /** trellisd refused the request for a reason that retrying will not fix. */
  TrellisdRefused: 106,
  /** A program the plugin runs (ip, nsenter) is missing. */
  ToolMissing: 107,
  /** A bug in the plugin (libcni's code for internal errors). */
  Internal: 999,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
    this.name = 'CniError';
  }
}

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
const COMMANDS: readonly string[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

export interface CniEnv {
  readonly command: Command;
  readonly containerId: string;
  readonly netns: string;
  readonly ifName: string;
  /** CNI_ARGS as key/value pairs (K8S_POD_NAMESPACE, K8S_POD_NAME, …). */
  readonly args: Readonly<Record<string, string>>;
  readonly path: string;
}

const REQUIRED: Readonly<Record<Command, readonly string[]>> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: [],
  VERSION: [],
};

/** Container ids and network names: an alphanumeric, then alphanumerics, `_`, `.`, `-`. */
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Reads and validates the CNI_* variables for the command they name. */
export function readEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND ?? '';
  if (command === '') throw new CniError(Code.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
  if (!COMMANDS.includes(command)) throw new CniError(Code.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`);
  const cmd = command as Command;
  const missing = REQUIRED[cmd].filter((name) => (env[name] ?? '') === '');
  if (missing.length > 0) throw new CniError(Code.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifName = env.CNI_IFNAME ?? '';
  if (cmd === 'ADD' || cmd === 'DEL' || cmd === 'CHECK') {
    if (!ID.test(containerId)) throw new CniError(Code.InvalidEnvironment, 'invalid characters in containerID', containerId);
    checkIfName(ifName);
  }
  return { command: cmd, containerId, netns: env.CNI_NETNS ?? '', ifName, args: parseArgs(env.CNI_ARGS ?? ''), path: env.CNI_PATH ?? '' };
}

function checkIfName(name: string): void {
  if (name.length > 15) throw new CniError(Code.InvalidEnvironment, 'interface name is too long', 'interface name should be less than 16 characters');
  if (name === '.' || name === '..') throw new CniError(Code.InvalidEnvironment, 'interface name is . or ..');
  if (/[/:\s]/.test(name)) throw new CniError(Code.InvalidEnvironment, 'interface name contains / or : or whitespace characters');
}

/** `K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web` → a map; unknown keys are kept and ignored. */
export function parseArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(Code.InvalidEnvironment, `CNI_ARGS: invalid pair ${JSON.stringify(pair)}`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** A GC attachment as the runtime lists it. */
export interface Attachment {
  readonly containerId: string;
  readonly ifName: string;
}

export interface NetConf {
  readonly cniVersion: string;
  /** Network name: `network` of every allocation, part of the veth alias. */
  readonly name: string;
  readonly type: string;
  /** `main`: trellis wires the pod; `ipam`: trellis only allocates, under another plugin. */
  readonly mode: 'main' | 'ipam';
  readonly socket: string;
  readonly timeoutMs: number;
  readonly mtu: number | undefined;
  readonly prevResult: Record<string, unknown> | undefined;
  readonly validAttachments: readonly Attachment[];
  /** The raw configuration, for passing on what the plugin does not interpret. */
  readonly raw: Record<string, unknown>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses stdin into a network configuration and checks it for `command`. */
export function parseConf(stdin: string, command: Command): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(Code.DecodingFailure, `error decoding network config from stdin: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw new CniError(Code.DecodingFailure, 'error decoding network config from stdin: not a JSON object');
  const name = raw.name;
  if (command !== 'STATUS' && (typeof name !== 'string' || name === '')) throw new CniError(Code.InvalidConfig, 'missing network name');
  if (typeof name === 'string' && name !== '' && !ID.test(name)) throw new CniError(Code.InvalidConfig, 'invalid characters found in network name', name);
  const cniVersion = typeof raw.cniVersion === 'string' ? raw.cniVersion : '';
  checkVersion(cniVersion, command);

  const type = typeof raw.type === 'string' ? raw.type : '';
  const ipam = raw.ipam;
  const mode = type !== 'trellis' && isObject(ipam) && ipam.type === 'trellis' ? 'ipam' : 'main';
  if (mode === 'main' && ipam !== undefined && ipam !== null) {
    throw new CniError(Code.UnsupportedField, 'unsupported field "ipam": the trellis plugin gets addresses from trellisd itself');
  }
  const own = mode === 'ipam' ? (ipam as Record<string, unknown>) : raw;
  const where = mode === 'ipam' ? 'ipam.' : '';
  const socket = own.socket ?? DEFAULT_SOCKET;
  if (typeof socket !== 'string' || !socket.startsWith('/')) throw new CniError(Code.InvalidConfig, `${where}socket must be an absolute path`);
  const timeoutMs = own.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 600_000) {
    throw new CniError(Code.InvalidConfig, `${where}timeoutMs must be an integer from 1 to 600000`);
  }
  const mtu = mode === 'main' ? raw.mtu : undefined;
  if (mtu !== undefined && (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 68 || mtu > 65535)) {
    throw new CniError(Code.InvalidConfig, 'mtu must be an integer from 68 to 65535');
  }
  const prev = raw.prevResult;
  if (prev !== undefined && prev !== null && !isObject(prev)) throw new CniError(Code.InvalidConfig, 'prevResult must be an object');
  return {
    cniVersion,
    name: typeof name === 'string' ? name : '',
    type,
    mode,
    socket,
    timeoutMs,
    mtu,
    prevResult: isObject(prev) ? prev : undefined,
    validAttachments: command === 'GC' ? attachments(raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments']) : [],
    raw,
  };
}

function checkVersion(version: string, command: Command): void {
  if (!SUPPORTED_VERSIONS.includes(version)) {
    const shown = version === '' ? 'missing (taken as 0.1.0)' : JSON.stringify(version);
    throw new CniError(Code.IncompatibleVersion, 'incompatible CNI versions', `config cniVersion is ${shown}, plugin supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (command === 'CHECK' && version === '0.4.0') return;
  if ((command === 'GC' || command === 'STATUS') && version !== '1.1.0') {
    throw new CniError(Code.IncompatibleVersion, `config version does not allow ${command}`, `${command} needs cniVersion 1.1.0, config has ${version}`);
  }
}

function attachments(value: unknown): Attachment[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new CniError(Code.InvalidConfig, 'cni.dev/valid-attachments must be a list');
  return value.map((a, i) => {
    if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
      throw new CniError(Code.InvalidConfig, `cni.dev/valid-attachments[${i}] needs containerID and ifname strings`);
    }
    return { containerId: a.containerID, ifName: a.ifname };
  });
}

export interface ResultInterface {
  name: string;
  mac: string;
  mtu?: number;
  sandbox?: string;
}

export interface ResultIp {
  address: string;
  gateway?: string;
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
}

/**
 * The ADD result in the shape of `cniVersion`: 0.4.0 marks each IP with
 * `version`; only 1.1.0 carries interface MTUs. Entries of a `prevResult`
 * (a plugin before this one in the chain) come first; our interface indexes
 * are shifted past its interfaces.
 */
export function formatResult(
  cniVersion: string,
  own: { interfaces: ResultInterface[]; ips: ResultIp[]; routes: ResultRoute[] },
  prev: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const prevList = (key: string): unknown[] => (Array.isArray(prev?.[key]) ? (prev[key] as unknown[]) : []);
  const shift = prevList('interfaces').length;
  const interfaces = own.interfaces.map((i) => (cniVersion === '1.1.0' || i.mtu === undefined ? i : { ...i, mtu: undefined }));
  const ips = own.ips.map((ip) => ({
    ...(cniVersion === '0.4.0' ? { version: ip.address.includes(':') ? '6' : '4' } : {}),
    ...ip,
    ...(ip.interface !== undefined ? { interface: ip.interface + shift } : {}),
  }));
  const result: Record<string, unknown> = { cniVersion };
  if (interfaces.length > 0 || shift > 0) result.interfaces = [...prevList('interfaces'), ...interfaces];
  result.ips = [...prevList('ips'), ...ips];
  result.routes = [...prevList('routes'), ...own.routes];
  result.dns = isObject(prev?.dns) ? prev.dns : {};
  return JSON.parse(JSON.stringify(result)) as Record<string, unknown>;
}

/** The error object printed on stdout. */
export function formatError(err: CniError, cniVersion: string): string {
  const version = SUPPORTED_VERSIONS.includes(cniVersion) ? cniVersion : SPEC_VERSION;
  return JSON.stringify({ cniVersion: version, code: err.code, msg: err.message, details: err.details });
}

/** Stable host-side veth name and MAC addresses of an attachment. */
export interface VethNames {
  /** `trl` + 11 hex digits: at most 15 characters, the kernel's limit. */
  readonly host: string;
  readonly hostMac: string;
  readonly podMac: string;
}

/** Prefix of every host-side veth the plugin creates; GC only ever looks at these. */
export const VETH_PREFIX = 'trl';

/**
 * A 64-bit hash of `text` as 16 hex digits: two 32-bit FNV-1a lanes, each
 * finished with murmur3's avalanche step so that every input bit moves every
 * output bit. Not cryptographic: it only spreads runtime-chosen ids, and it
 * costs nothing to load (node:crypto would).
 */
export function hash64(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (a >>> 13);
  }
  const fmix = (h: number): string => {
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return ((h ^ (h >>> 16)) >>> 0).toString(16).padStart(8, '0');
  };
  return fmix(a) + fmix(b ^ Math.imul(a, 0x9e3779b1));
}

/** Names derived from (container id, interface name); the same pair always gets the same names. */
export function vethNames(containerId: string, ifName: string): VethNames {
  const h = hash64(`${containerId}\u0000${ifName}`);
  const h2 = hash64(`${ifName}\u0000${containerId}`);
  const mac = (first: string, hex: string): string => [first, ...(hex.match(/../g) ?? []).slice(0, 5)].join(':');
  return {
    host: `${VETH_PREFIX}${h.slice(0, 11)}`,
    // ee: and 0a: are unicast and locally administered.
    hostMac: mac('ee', h2.slice(0, 10)),
    podMac: mac('0a', h.slice(11, 16) + h2.slice(10, 15)),
  };
}

/** The veth alias that ties a host veth to its attachment: `trellis/<network>/<container id>/<ifname>`. */
export function vethAlias(network: string, containerId: string, ifName: string): string {
  return `trellis/${network}/${containerId}/${ifName}`;
}

/**
 * The trellisd /v1/allocate request for this invocation (pod from CNI_ARGS, network from the config):
 * every field of the generated AllocateRequest (type only), so a field renamed in the proto is a compile error.
 */
export function allocateRequest(env: CniEnv, conf: NetConf): Omit<AllocateRequest, '$typeName' | '$unknown'> {
  return {
    containerId: env.containerId,
    ifName: env.ifName,
    netns: env.netns,
    podNamespace: env.args.K8S_POD_NAMESPACE ?? '',
    podName: env.args.K8S_POD_NAME ?? '',
    network: conf.name,
  };
}
