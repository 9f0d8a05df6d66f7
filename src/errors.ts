// The project's one error taxonomy. Every error Trellis raises on purpose is a
// TrellisError with a stable `code`; callers branch on the code, never on the
// message. Wrap lower-level failures with `{ cause }` so the chain survives.
// Mapping to CNI error numbers or HTTP statuses happens only at those edges.

export const ErrorCode = {
  /** Configuration or command-line input is invalid: fatal, fix and retry. */
  Config: 'E_CONFIG',
  /** A prefix or address could not be parsed or is not canonical. */
  InvalidCidr: 'E_INVALID_CIDR',
  /** A topology file or record is invalid. */
  Topology: 'E_TOPOLOGY',
  /** A record read from the store is malformed, hostile or of an unknown schema. */
  BadRecord: 'E_BAD_RECORD',
  /** A compare-and-swap lost against a concurrent writer: re-read and recompute. */
  Conflict: 'E_CONFLICT',
  /** No free block or address is left where one was needed. */
  Exhausted: 'E_EXHAUSTED',
  /** The thing asked for does not exist. */
  NotFound: 'E_NOT_FOUND',
  /** A dependency (etcd, trellisd, EC2) is unreachable or not ready: transient. */
  Unavailable: 'E_UNAVAILABLE',
  /** The kernel refused a netlink request. */
  Kernel: 'E_KERNEL',
  /** The cloud API refused a request. */
  Cloud: 'E_CLOUD',
  /** A bug: an invariant that must hold did not. */
  Internal: 'E_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const transient: ReadonlySet<ErrorCode> = new Set([ErrorCode.Conflict, ErrorCode.Unavailable]);

export class TrellisError extends Error {
  readonly code: ErrorCode;
  /** Structured context for logs (field paths, prefixes, node names). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TrellisError';
    this.code = code;
    this.details = options.details;
  }
}

/** True for errors worth retrying with backoff (lost races, unreachable peers). */
export function isTransient(err: unknown): boolean {
  return err instanceof TrellisError && transient.has(err.code);
}

/** True when `err` is a TrellisError carrying `code`. */
export function hasCode(err: unknown, code: ErrorCode): err is TrellisError {
  return err instanceof TrellisError && err.code === code;
}

/** A one-line human message for any thrown value, without a stack trace. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const told = err.cause instanceof Error && isSystemError(err.cause) && err.message.endsWith(describeFileError(err.cause));
    const cause = err.cause instanceof Error && !told ? `: ${err.cause.message}` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}

function isSystemError(err: Error): err is NodeJS.ErrnoException {
  return typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/**
 * Why a file could not be read, in words and without the path (the caller
 * names the file once): "no such file", "permission denied", …
 */
export function describeFileError(err: unknown): string {
  switch ((err as NodeJS.ErrnoException | undefined)?.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory, not a file';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}
