// Maps what the `netlink` package throws onto the Trellis error taxonomy.
//
// The package rejects a refused request with a plain `Error('Request
// rejected: EEXIST')` (the errno name; the bare negative number when Node has
// no name for it), a timed-out one with `Error('Timeout has been reached')`,
// and socket failures with an ErrnoException carrying `code`. Every mapped
// error is a TrellisError whose `details.errno` holds the errno name and whose
// message names the operation and the route, with the original as `cause`.
//
// Codes: EEXIST → Conflict (the table changed under us: re-list and diff),
// ENODEV/ESRCH/ENOENT → NotFound, timeouts and transient socket errors →
// Unavailable, anything else (ENETUNREACH, EPERM, EINVAL, …) → Kernel.

import { ErrorCode, TrellisError } from '../errors.js';

const REJECTED = /^Request rejected: (E[A-Z0-9]+|-?\d+)$/;

/** The errno name in an error thrown by the netlink package (or one of ours), if there is one. */
export function netlinkErrno(err: unknown): string | undefined {
  if (err instanceof TrellisError) {
    const errno = err.details?.errno;
    return typeof errno === 'string' ? errno : undefined;
  }
  if (!(err instanceof Error)) return undefined;
  const m = REJECTED.exec(err.message);
  if (m?.[1] !== undefined) return m[1];
  if (err.message === 'Timeout has been reached') return 'ETIMEDOUT';
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

const CODES: Readonly<Record<string, ErrorCode>> = {
  EEXIST: ErrorCode.Conflict,
  ENODEV: ErrorCode.NotFound,
  ESRCH: ErrorCode.NotFound,
  ENOENT: ErrorCode.NotFound,
  ETIMEDOUT: ErrorCode.Unavailable,
  EAGAIN: ErrorCode.Unavailable,
  EBUSY: ErrorCode.Unavailable,
  EINTR: ErrorCode.Unavailable,
  ENOBUFS: ErrorCode.Unavailable,
  ENOMEM: ErrorCode.Unavailable,
};

const WHY: Readonly<Record<string, string>> = {
  EEXIST: 'a route with the same table, destination and metric already exists',
  ESRCH: 'no such route',
  ENODEV: 'no such device',
  ENETUNREACH: 'the gateway is not reachable on any connected network',
  EHOSTUNREACH: 'the gateway is not reachable',
  EPERM: 'permission denied (CAP_NET_ADMIN needed)',
  EACCES: 'permission denied (CAP_NET_ADMIN needed)',
  EINVAL: 'the kernel rejected the request as invalid',
  ETIMEDOUT: 'no answer from the kernel in time',
};

/** The TrellisError for a failed `op` ("add", "dump", …) on `subject` (a route description). */
export function toTrellisError(err: unknown, op: string, subject: string): TrellisError {
  if (err instanceof TrellisError) return err;
  const errno = netlinkErrno(err) ?? 'UNKNOWN';
  const code = CODES[errno] ?? ErrorCode.Kernel;
  const why = WHY[errno] ?? (err instanceof Error ? err.message : String(err));
  return new TrellisError(code, `netlink ${op} ${subject}: ${errno} (${why})`, {
    cause: err,
    details: { errno, op, route: subject },
  });
}
