// Loading and validating the trellisd configuration.
//
// Sources, highest precedence first: command-line flags, TRELLIS_* environment
// variables, etcdctl's ETCDCTL_* variables (for the etcd endpoints and TLS
// files), the YAML file given with --config, the defaults of schema.ts. Every
// problem is collected and reported together, each naming where the bad value
// came from; nothing starts on a bad config. describeConfig prints a
// configuration that reads back as itself (durations as 6s, 500ms, 2m).

import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describeFileError, ErrorCode, TrellisError } from '../errors.js';
import { didYouMean } from '../core/suggest.js';
import { parseAddress, tryParsePrefix } from '../core/cidr.js';
import { checkKeyName } from '../state/keys.js';
import { etcdSettingsProblems, parseListen } from '../core/endpoints.js';
import { bgpConfigProblems, type BgpConfig } from './bgp-config.js';
import { CONFIG_KEYS, envName, flagName, formatDuration, type ConfigKey } from './schema.js';

export interface TrellisConfig {
  nodeName: string;
  hostIP: string;
  subnet: string | undefined;
  interface: string;
  instanceId: string;
  /** ms */
  holdTime: number;
  /** ms; 0: no restart lease */
  restartHoldTime: number;
  stateDir: string;
  etcd: {
    endpoints: string[];
    prefix: string;
    tls: { ca: string | undefined; cert: string | undefined; key: string | undefined };
    username: string | undefined;
    password: string | undefined;
    /** ms */
    requestTimeout: number;
  };
  routes: {
    enabled: boolean;
    table: number;
    protocol: number;
    /** ms */
    resyncInterval: number;
    ownBlocks: 'unreachable' | 'blackhole' | 'none';
    /** ms; 0: no mass-withdrawal damping */
    massWithdrawGrace: number;
  };
  ipam: {
    socket: string;
    /** ms */
    addressRest: number;
    /** ms */
    blockGrace: number;
    /** ms */
    etcdTimeout: number;
  };
  gc: {
    /** ms; 0: never collect a node on time alone. */
    deadNodeAfter: number;
    /** The collector's own etcd credential (the trellis-collector user). */
    etcdUsername?: string;
    etcdPassword?: string;
  };
  http: { listen: string };
  vpc: VpcConfig;
  bgp: BgpConfig;
  cni: CniConfig;
  egress: EgressConfig;
  log: { level: string };
}

export interface EgressConfig {
  /** undefined = decided at start from the pod network and the VPC CIDR(s). */
  masquerade: boolean | undefined;
  /** undefined = the VPC CIDR(s) when known, else none. */
  nonMasqueradeCidrs: string[] | undefined;
  /** The VPC's IPv4 CIDR blocks read from the instance metadata (not a key: filled in by detection). */
  vpcCidrs?: string[] | undefined;
  /** Why the VPC's CIDR blocks could not be read (filled in by detection). */
  vpcCidrsUnknown?: string | undefined;
}

export interface CniConfig {
  install: boolean;
  binDir: string;
  confDir: string;
  confName: string;
  /** undefined = the MTU of `interface`, read when installing. */
  mtu: number | undefined;
  replaceExisting: boolean;
}

export interface VpcConfig {
  enabled: boolean;
  /** "" = the regional AWS endpoint. */
  endpoint: string;
  /** "" = from the instance metadata. */
  region: string;
  /** "" = from the instance metadata (only needed for a "main" table). */
  vpcId: string;
  routeLimit: number;
  metadataEndpoint: string;
  disableSourceDestCheck: boolean;
  /** ms */
  verifyInterval: number;
  /** ms */
  probeInterval: number;
  probeMisses: number;
  /** ms */
  recoverAfter: number;
  unreachableAfter: number;
  /** Client-side token buckets of EC2 calls: mutating (route writes) and describe. */
  writeBurst: number;
  writesPerSecond: number;
  readBurst: number;
  readsPerSecond: number;
}

type Raw = string | number | boolean | string[];
type Source = { where: string; value: unknown };

const durationPattern = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/;

export function parseDuration(text: string): number | undefined {
  const m = durationPattern.exec(text.trim());
  if (m === null) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60000 : 3600000;
  return Math.round(n * factor);
}

/** A value for a message: JSON where it can be (cycles and odd types shown plainly), cut short. */
function show(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  text ??= Array.isArray(value) ? 'a list' : typeof value === 'object' && value !== null ? 'a mapping' : String(value);
  return text.length <= 80 ? text : `${text.slice(0, 80)}…`;
}

/** Why a value was refused (a string key's value is a string too, so the two must not mix). */
interface Bad {
  readonly bad: string;
}

function coerce(key: ConfigKey, value: unknown): Raw | Bad {
  const bad = (what: string): Bad => ({ bad: `expected ${what}, got ${show(value)}` });
  switch (key.type) {
    case 'string':
      return typeof value === 'string' || typeof value === 'number' ? String(value) : bad('a string');
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1') return true;
      if (value === 'false' || value === '0') return false;
      return bad('true or false');
    case 'integer': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n)) return bad('an integer');
      return n;
    }
    case 'duration': {
      const ms = typeof value === 'number' ? value * 1000 : typeof value === 'string' ? parseDuration(value) : undefined;
      if (ms === undefined || !Number.isFinite(ms)) return bad('a duration like 6s, 500ms or 2m (a bare number means seconds)');
      return ms;
    }
    case 'list':
      if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
      return bad('a list of strings');
  }
}

function flatten(doc: unknown, prefix: string, out: Map<string, unknown>, problems: string[], file: string): void {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push(`${file}: ${prefix === '' ? 'the file' : prefix} must be a mapping`);
    return;
  }
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    const path = prefix === '' ? k : `${prefix}.${k}`;
    const known = CONFIG_KEYS.some((key) => key.path === path);
    const isGroup = CONFIG_KEYS.some((key) => key.path.startsWith(`${path}.`));
    if (known) out.set(path, v);
    else if (isGroup) flatten(v, path, out, problems, file);
    else problems.push(`${file}: unknown key ${path}${didYouMean(path, knownNear(prefix), (s) => s)}`);
  }
}

/** The keys and groups a misspelt key at `prefix` may have meant (siblings first). */
const nearCache = new Map<string, string[]>();

function knownNear(prefix: string): string[] {
  const cached = nearCache.get(prefix);
  if (cached !== undefined) return cached;
  const near = namesNear(prefix);
  if (nearCache.size < 64) nearCache.set(prefix, near);
  return near;
}

function namesNear(prefix: string): string[] {
  const names = new Set<string>();
  for (const key of CONFIG_KEYS) {
    const parts = key.path.split('.');
    for (let i = 1; i <= parts.length; i++) names.add(parts.slice(0, i).join('.'));
  }
  const depth = prefix === '' ? 1 : prefix.split('.').length + 1;
  return [...names].sort((a, b) => Number(b.split('.').length === depth) - Number(a.split('.').length === depth));
}

export interface LoadOptions {
  file?: string | undefined;
  /** Values given on the command line, by key path. */
  flags?: ReadonlyMap<string, string>;
  env?: NodeJS.ProcessEnv;
  /** How a key's flag is spelled in messages (default `--<flag-name>`). */
  flagLabel?: (key: ConfigKey) => string;
}

export type ConfigValues = ReadonlyMap<string, Raw>;

function readFileKeys(file: string, problems: string[]): Map<string, unknown> {
  const fromFile = new Map<string, unknown>();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TrellisError(ErrorCode.Config, `cannot read config file ${file}: ${describeFileError(err)}`);
  }
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) return fromFile;
  if (docs.length > 1) {
    problems.push(`${file}: the file must hold one YAML document, found ${docs.length} (remove the "---" lines between them)`);
    return fromFile;
  }
  const [only] = docs;
  if (only === undefined) return fromFile;
  const error = only.errors[0];
  if (error !== undefined) {
    problems.push(`${file}: not valid YAML: ${error.message.split('\n')[0]}`);
    return fromFile;
  }
  let doc: unknown;
  try {
    doc = only.toJS({ maxAliasCount: 100 });
  } catch (err) {
    problems.push(`${file}: not usable YAML: ${(err as Error).message.split('\n')[0]}`);
    return fromFile;
  }
  if (doc !== null && doc !== undefined) flatten(doc, '', fromFile, problems, file);
  return fromFile;
}

/**
 * Resolve `keys` from flags, environment, file and defaults (in that order of
 * precedence). Problems are appended to `problems`; values that are wrong are
 * left out of the result.
 */
export function resolveKeys(keys: readonly ConfigKey[], options: LoadOptions, problems: string[]): ConfigValues {
  const fromFile = options.file === undefined ? new Map<string, unknown>() : readFileKeys(options.file, problems);
  const env = options.env ?? {};
  const label = options.flagLabel ?? ((k: ConfigKey) => `--${flagName(k.path)}`);
  const values = new Map<string, Raw>();
  for (const key of keys) {
    const fallback = key.fallbackEnv;
    const candidates: Array<Source | undefined> = [
      options.flags?.has(key.path) === true ? { where: label(key), value: options.flags.get(key.path) } : undefined,
      env[envName(key.path)] !== undefined ? { where: envName(key.path), value: env[envName(key.path)] } : undefined,
      fallback !== undefined && env[fallback] !== undefined ? { where: fallback, value: env[fallback] } : undefined,
      fromFile.has(key.path) ? { where: `${options.file}: ${key.path}`, value: fromFile.get(key.path) } : undefined,
    ];
    const source = candidates.find((c) => c !== undefined);
    if (source === undefined) {
      if (key.default !== undefined) values.set(key.path, key.default as Raw);
      else if (key.required === true) problems.push(`${key.path} is required (set it in the file, with ${label(key)} or ${envName(key.path)})`);
      continue;
    }
    const v = coerce(key, source.value);
    if (typeof v === 'object' && !Array.isArray(v)) {
      problems.push(`${source.where}: ${v.bad}`);
      continue;
    }
    if (typeof v === 'number' && ((key.min !== undefined && v < key.min) || (key.max !== undefined && v > key.max))) {
      const show = (n: number | undefined): string => (n === undefined ? '' : key.type === 'duration' ? formatDuration(n) : String(n));
      problems.push(`${source.where}: ${show(v)} is out of range ${show(key.min)}..${show(key.max)}${key.rangeHint === undefined ? '' : ` (${key.rangeHint})`}`);
      continue;
    }
    values.set(key.path, v);
  }
  return values;
}

function etcdSection(values: ConfigValues): TrellisConfig['etcd'] {
  const str = (p: string): string | undefined => values.get(p) as string | undefined;
  return {
    endpoints: (values.get('etcd.endpoints') as string[] | undefined) ?? [],
    prefix: str('etcd.prefix') ?? '/trellis',
    tls: { ca: str('etcd.tls.ca'), cert: str('etcd.tls.cert'), key: str('etcd.tls.key') },
    username: str('etcd.username'),
    password: str('etcd.password'),
    requestTimeout: (values.get('etcd.requestTimeout') as number | undefined) ?? 5000,
  };
}

function vpcSection(values: ConfigValues): VpcConfig {
  const get = <T>(p: string): T => values.get(p) as T;
  return {
    enabled: get<boolean>('vpc.enabled'),
    endpoint: get<string>('vpc.endpoint'),
    region: get<string>('vpc.region'),
    vpcId: get<string>('vpc.vpcId'),
    routeLimit: get<number>('vpc.routeLimit'),
    metadataEndpoint: get<string>('vpc.metadataEndpoint'),
    disableSourceDestCheck: get<boolean>('vpc.disableSourceDestCheck'),
    verifyInterval: get<number>('vpc.verifyInterval'),
    probeInterval: get<number>('vpc.probeInterval'),
    probeMisses: get<number>('vpc.probeMisses'),
    recoverAfter: get<number>('vpc.recoverAfter'),
    unreachableAfter: get<number>('vpc.unreachableAfter'),
    writeBurst: get<number>('vpc.writeBurst'),
    writesPerSecond: get<number>('vpc.writesPerSecond'),
    readBurst: get<number>('vpc.readBurst'),
    readsPerSecond: get<number>('vpc.readsPerSecond'),
  };
}

/** Problems with the vpc.* settings that can be seen without connecting. */
export function vpcConfigProblems(vpc: VpcConfig): string[] {
  const problems: string[] = [];
  const url = (key: string, value: string): void => {
    if (!/^https?:\/\/[^/\s]+\/?$/.test(value)) problems.push(`${key} must be a URL like http://host:port (no path), got ${JSON.stringify(value)}`);
  };
  if (typeof vpc.endpoint === 'string' && vpc.endpoint !== '') url('vpc.endpoint', vpc.endpoint);
  if (typeof vpc.metadataEndpoint === 'string') url('vpc.metadataEndpoint', vpc.metadataEndpoint);
  if (typeof vpc.region === 'string' && vpc.region !== '' && !/^[a-z]{2}(-[a-z]+)+-[0-9]+$/.test(vpc.region)) problems.push(`vpc.region must look like us-east-1, got ${JSON.stringify(vpc.region)}`);
  if (typeof vpc.vpcId === 'string' && vpc.vpcId !== '' && !/^vpc-[0-9a-f]+$/.test(vpc.vpcId)) problems.push(`vpc.vpcId must look like vpc-0abc123, got ${JSON.stringify(vpc.vpcId)}`);
  return problems;
}

function fail(problems: string[]): never {
  throw new TrellisError(ErrorCode.Config, `invalid configuration:\n  ${problems.join('\n  ')}`, { details: { problems } });
}

/** Only the etcd.* keys (for trellisctl); throws one E_CONFIG error listing every problem. */
export function loadEtcdConfig(options: LoadOptions): TrellisConfig['etcd'] {
  const problems: string[] = [];
  const etcd = etcdSection(resolveKeys(CONFIG_KEYS.filter((k) => k.path.startsWith('etcd.')), options, problems));
  problems.push(...etcdSettingsProblems(etcd));
  if (problems.length > 0) fail(problems);
  return etcd;
}

/** Merge all sources; throws one TrellisError(E_CONFIG) listing every problem. */
export function loadConfig(options: LoadOptions): TrellisConfig {
  const problems: string[] = [];
  const values = resolveKeys(CONFIG_KEYS, options, problems);
  const str = (p: string): string | undefined => values.get(p) as string | undefined;
  const config: TrellisConfig = {
    nodeName: str('nodeName') ?? hostname().split('.')[0] ?? 'node',
    hostIP: str('hostIP') ?? '',
    subnet: str('subnet'),
    interface: str('interface') ?? '',
    instanceId: str('instanceId') ?? '',
    holdTime: values.get('holdTime') as number,
    restartHoldTime: values.get('restartHoldTime') as number,
    stateDir: str('stateDir') as string,
    etcd: etcdSection(values),
    routes: {
      enabled: values.get('routes.enabled') as boolean,
      table: values.get('routes.table') as number,
      protocol: values.get('routes.protocol') as number,
      resyncInterval: values.get('routes.resyncInterval') as number,
      ownBlocks: str('routes.ownBlocks') as TrellisConfig['routes']['ownBlocks'],
      massWithdrawGrace: values.get('routes.massWithdrawGrace') as number,
    },
    ipam: {
      socket: str('ipam.socket') as string,
      addressRest: values.get('ipam.addressRest') as number,
      blockGrace: values.get('ipam.blockGrace') as number,
      etcdTimeout: values.get('ipam.etcdTimeout') as number,
    },
    gc: { deadNodeAfter: values.get('gc.deadNodeAfter') as number, etcdUsername: str('gc.etcdUsername'), etcdPassword: str('gc.etcdPassword') },
    http: { listen: str('http.listen') as string },
    vpc: vpcSection(values),
    bgp: {
      enabled: values.get('bgp.enabled') as boolean,
      mode: str('bgp.mode') as string,
      asn: values.get('bgp.asn') as number | undefined,
      routerId: str('bgp.routerId'),
      peers: values.get('bgp.peers') as string[],
      communities: values.get('bgp.communities') as string[],
      gobgpd: str('bgp.gobgpd') as string,
      apiListen: str('bgp.apiListen') as string,
      listenPort: values.get('bgp.listenPort') as number,
      restartTime: values.get('bgp.restartTime') as number,
    },
    cni: {
      install: values.get('cni.install') as boolean,
      binDir: str('cni.binDir') as string,
      confDir: str('cni.confDir') as string,
      confName: str('cni.confName') as string,
      mtu: values.get('cni.mtu') as number | undefined,
      replaceExisting: values.get('cni.replaceExisting') as boolean,
    },
    egress: {
      masquerade: values.get('egress.masquerade') as boolean | undefined,
      nonMasqueradeCidrs: values.get('egress.nonMasqueradeCidrs') as string[] | undefined,
    },
    log: { level: str('log.level') as string },
  };
  problems.push(...semanticProblems(config, values));
  if (problems.length > 0) fail(problems);
  return config;
}

/** Problems between keys and with their meaning; a key left out of `values` was refused already and is not checked again. */
function semanticProblems(config: TrellisConfig, values: ConfigValues): string[] {
  const problems: string[] = [];
  const check = (f: () => unknown): void => {
    try {
      f();
    } catch (err) {
      problems.push((err as Error).message);
    }
  };
  check(() => checkKeyName('nodeName', config.nodeName));
  if (config.subnet !== undefined) check(() => checkKeyName('subnet', config.subnet as string));
  if (values.has('hostIP')) {
    check(() => {
      try {
        parseAddress(config.hostIP);
      } catch {
        throw new Error(`hostIP ${JSON.stringify(config.hostIP)} is not an IP address`);
      }
    });
  }
  if (config.holdTime !== undefined && config.holdTime % 1000 !== 0) problems.push(`holdTime must be whole seconds (etcd leases count in seconds), got ${config.holdTime} ms`);
  if (config.restartHoldTime !== undefined && config.restartHoldTime % 1000 !== 0) problems.push(`restartHoldTime must be whole seconds (etcd leases count in seconds), got ${config.restartHoldTime} ms`);
  if (values.has('routes.ownBlocks') && !['unreachable', 'blackhole', 'none'].includes(config.routes.ownBlocks)) {
    problems.push(`routes.ownBlocks must be unreachable, blackhole or none; got ${JSON.stringify(config.routes.ownBlocks)}`);
  }
  if (values.has('http.listen') && config.http.listen !== '' && parseListen(config.http.listen) === undefined) {
    problems.push(`http.listen must be host:port (e.g. 127.0.0.1:9653 or [::1]:9653) or empty; got ${JSON.stringify(config.http.listen)}`);
  }
  if (values.has('ipam.socket') && config.ipam.socket !== '' && !isAbsolute(config.ipam.socket)) problems.push(`ipam.socket must be an absolute path or empty, got ${JSON.stringify(config.ipam.socket)}`);
  for (const key of ['binDir', 'confDir'] as const) {
    if (values.has(`cni.${key}`) && !isAbsolute(config.cni[key])) problems.push(`cni.${key} must be an absolute path, got ${JSON.stringify(config.cni[key])}`);
  }
  if (values.has('cni.confName') && !/^[A-Za-z0-9][A-Za-z0-9._-]*\.conflist$/.test(config.cni.confName)) problems.push(`cni.confName must be a plain file name ending in .conflist, got ${JSON.stringify(config.cni.confName)}`);
  if (values.has('stateDir') && !isAbsolute(config.stateDir)) problems.push(`stateDir must be an absolute path, got ${JSON.stringify(config.stateDir)}`);
  if (values.has('log.level') && !['fatal', 'error', 'warn', 'info', 'debug', 'trace'].includes(config.log.level)) {
    problems.push(`log.level must be one of fatal, error, warn, info, debug, trace; got ${JSON.stringify(config.log.level)}`);
  }
  problems.push(...etcdSettingsProblems(config.etcd));
  if ((config.gc.etcdUsername === undefined) !== (config.gc.etcdPassword === undefined)) {
    problems.push('gc.etcdUsername and gc.etcdPassword go together: set both or neither');
  }
  problems.push(...vpcConfigProblems(config.vpc));
  problems.push(...egressCidrProblems('egress.nonMasqueradeCidrs', config.egress.nonMasqueradeCidrs ?? []));
  problems.push(...bgpConfigProblems(config.bgp));
  return problems;
}

/** Each entry of `cidrs` that is not a canonical IPv4 prefix, named with `key`. */
export function egressCidrProblems(key: string, cidrs: readonly string[]): string[] {
  const problems: string[] = [];
  for (const text of cidrs) {
    const p = tryParsePrefix(text);
    if (typeof p === 'string') problems.push(`${key}: ${p}`);
    else if (p.family !== 4) problems.push(`${key}: ${text} is not an IPv4 prefix (egress masquerade is IPv4 only)`);
  }
  return problems;
}

/** Each configured etcd TLS file that cannot be read, named with its key. */
export function tlsFileProblems(etcd: TrellisConfig['etcd']): string[] {
  const problems: string[] = [];
  for (const [key, path] of [['etcd.tls.ca', etcd.tls.ca], ['etcd.tls.cert', etcd.tls.cert], ['etcd.tls.key', etcd.tls.key]] as const) {
    if (path === undefined) continue;
    try {
      if (statSync(path).isDirectory()) throw Object.assign(new Error('directory'), { code: 'EISDIR', syscall: 'open' });
      readFileSync(path);
    } catch (err) {
      problems.push(`${key}: cannot read ${path}: ${describeFileError(err)}`);
    }
  }
  return problems;
}

/**
 * The configuration as YAML-able data with secrets masked (for --check-config
 * and logs), shaped like the configuration file and written in its units
 * (durations as "6s", "500ms"), so that it loads back as the same
 * configuration. Unset keys are left out.
 */
export function describeConfig(config: TrellisConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const parts = key.path.split('.');
    let value: unknown = config;
    for (const part of parts) value = (value as Record<string, unknown> | undefined)?.[part];
    if (value === undefined) continue;
    if (key.secret === true) value = '********';
    else if (key.path === 'bgp.peers' && Array.isArray(value)) value = value.map((p) => String(p).replace(/password=\S+/, 'password=********'));
    else if (key.type === 'duration' && typeof value === 'number') value = formatDuration(value);
    let at = out;
    for (const part of parts.slice(0, -1)) at = (at[part] ??= {}) as Record<string, unknown>;
    at[parts[parts.length - 1] as string] = value;
  }
  return out;
}
