// Connecting to etcd: one place that turns the `etcd.*` configuration into an
// Etcd3 client with TLS, username/password auth, deadlines on unary calls
// (never on watch or keepalive streams) and a short circuit-breaker so that a
// restarted etcd is used again within about a second. `checkEtcd` makes the
// first round trip and turns the usual failures into messages that say what
// is missing (CA, client certificate, credentials) instead of a gRPC dump.

import { readFileSync } from 'node:fs';
import { circuitBreaker, ConsecutiveBreaker, handleWhen, isBrokenCircuitError, retry, ExponentialBackoff } from 'cockatiel';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { etcdSettingsProblems, type EtcdSettings } from '../core/endpoints.js';
import { describeFileError, ErrorCode, TrellisError } from '../errors.js';

export type { EtcdSettings, EtcdTls } from '../core/endpoints.js';


function readPem(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TrellisError(ErrorCode.Config, `cannot read etcd ${what} ${path}: ${describeFileError(err)}`, {
      cause: err,
    });
  }
}


/**
 * Errors worth retrying and counting against a host: etcd3's recoverable
 * errors, less an answer too large for one gRPC message (RESOURCE_EXHAUSTED),
 * which says nothing about the host's health and which paged reads
 * (paged-range.ts) handle by asking for less.
 */
function isTransient(err: Error): boolean {
  return isRecoverableError(err) && !/RESOURCE_EXHAUSTED|larger than max/i.test(err.message);
}

export function connectEtcd(settings: EtcdSettings): Etcd3 {
  const problems = etcdSettingsProblems(settings);
  if (problems.length > 0) throw new TrellisError(ErrorCode.Config, problems.join('; '));
  const secure = settings.endpoints.some((e) => e.startsWith('https://'));
  const tls = settings.tls ?? {};
  const requestTimeoutMs = settings.requestTimeoutMs ?? 5000;
  const options: IOptions = {
    hosts: settings.endpoints,
    dialTimeout: settings.dialTimeoutMs ?? 3000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(isTransient), {
          halfOpenAfter: 1000,
          breaker: new ConsecutiveBreaker(3),
        }),
      global: retry(handleWhen(isTransient), {
        maxAttempts: 2,
        backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }),
      }),
    },
  };
  if (secure && tls.ca !== undefined) {
    options.credentials = {
      rootCertificate: readPem('CA', tls.ca),
      ...(tls.cert !== undefined && tls.key !== undefined
        ? { certChain: readPem('client certificate', tls.cert), privateKey: readPem('client key', tls.key) }
        : {}),
    };
  }
  if (settings.username !== undefined && settings.password !== undefined) {
    options.auth = { username: settings.username, password: settings.password };
  }
  return new Etcd3(options);
}

/** Errors of the etcd client or of its fault handling (as opposed to Trellis's own). */
export function isEtcdClientError(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof TrellisError) return false;
  return isBrokenCircuitError(err) || /^(GRPC|Etcd|ClientRuntime|ClientClosed)/.test(err.name) || /^(GRPC|Etcd)/.test(err.constructor.name);
}

/**
 * The client library's words for a failure, made readable: one line, the
 * circuit breaker's "Execution prevented …" replaced by what it means, a
 * refused connection said plainly.
 */
function etcdFailureText(err: unknown): string {
  if (isBrokenCircuitError(err)) return 'no answer (its last requests failed, so the client stopped trying for a moment)';
  // gRPC breaks its message over lines (" (timestamp)" on a line of its own): keep it one line.
  const text = String((err as Error)?.message ?? err)
    .replace(/\s*Resolution note:\s*$/, '')
    .replace(/\s*\n\s*/g, ' ');
  const refused = /connect ECONNREFUSED (\S+?)\.?(\s|$)/.exec(text);
  if (refused !== null) return `connection refused by ${refused[1]}`;
  return text;
}

/** Explain a failed contact with etcd in terms of the configuration. */
export function explainEtcdError(err: unknown, settings: EtcdSettings): TrellisError {
  const text = etcdFailureText(err);
  const where = settings.endpoints.join(', ');
  const secure = settings.endpoints.some((e) => e.startsWith('https://'));
  let hint = '';
  if (isBrokenCircuitError(err)) {
    hint = ` (is etcd running and reachable at ${where}? check the endpoint${secure ? ' and the TLS settings' : ''} and the network)`;
  } else if (/certificate|handshake|SSL|TLS|alert/i.test(text) || (secure && /UNAVAILABLE|No connection established/i.test(text))) {
    hint =
      settings.tls?.cert === undefined
        ? ' (the server may require a client certificate: set etcd.tls.cert and etcd.tls.key, or --etcd-tls-cert/--etcd-tls-key)'
        : ' (check that etcd.tls.ca signed the server certificate and that the server trusts the client certificate)';
  } else if (/authenticat|invalid auth token|user name|password/i.test(text)) {
    hint = ' (check etcd.username and etcd.password)';
  } else if (/permission denied/i.test(text)) {
    hint = ' (the etcd user needs read and write permission on the Trellis prefix, e.g. /trellis/)';
  } else if (/ECONNREFUSED|refused|UNAVAILABLE|No connection established|DEADLINE/i.test(text)) {
    hint = ' (is etcd running and reachable at that address?)';
  }
  return new TrellisError(ErrorCode.Unavailable, `cannot reach etcd at ${where}: ${text}${hint}`);
}

/**
 * One round trip to etcd (a read of `probeKey`, which the credentials must be
 * allowed to read); throws an explained TrellisError on failure.
 */
export async function checkEtcd(client: Etcd3, settings: EtcdSettings, probeKey: string): Promise<void> {
  try {
    await client.get(probeKey).exec();
  } catch (err) {
    throw explainEtcdError(err, settings);
  }
}
