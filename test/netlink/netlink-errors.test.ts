// What the netlink package throws, mapped onto the error taxonomy.

import t from 'tap';
import { ErrorCode, TrellisError, isTransient } from '../../src/errors.js';
import { netlinkErrno, toTrellisError } from '../../src/netlink/netlink-errors.js';

t.test('errno extraction', async (t) => {
  t.equal(netlinkErrno(new Error('Request rejected: EEXIST')), 'EEXIST');
  t.equal(netlinkErrno(new Error('Request rejected: -523')), '-523', 'no name known to Node');
  t.equal(netlinkErrno(new Error('Timeout has been reached')), 'ETIMEDOUT');
  t.equal(netlinkErrno(Object.assign(new Error('recvmsg failed'), { code: 'ENOBUFS' })), 'ENOBUFS');
  t.equal(netlinkErrno(new Error('something else')), undefined);
  t.equal(netlinkErrno('EEXIST'), undefined, 'not an Error');
  t.equal(netlinkErrno(new TrellisError(ErrorCode.NotFound, 'x', { details: { errno: 'ENODEV' } })), 'ENODEV', 'ours');
  t.equal(netlinkErrno(new TrellisError(ErrorCode.NotFound, 'x')), undefined, 'ours, without errno');
});

t.test('mapping to codes', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['Request rejected: EEXIST', ErrorCode.Conflict, 'EEXIST'],
    ['Request rejected: ENETUNREACH', ErrorCode.Kernel, 'ENETUNREACH'],
    ['Request rejected: EPERM', ErrorCode.Kernel, 'EPERM'],
    ['Request rejected: EINVAL', ErrorCode.Kernel, 'EINVAL'],
    ['Request rejected: ENODEV', ErrorCode.NotFound, 'ENODEV'],
    ['Request rejected: ESRCH', ErrorCode.NotFound, 'ESRCH'],
    ['Request rejected: EBUSY', ErrorCode.Unavailable, 'EBUSY'],
    ['Timeout has been reached', ErrorCode.Unavailable, 'ETIMEDOUT'],
    ['boom', ErrorCode.Kernel, 'UNKNOWN'],
  ];
  for (const [message, code, errno] of cases) {
    const cause = new Error(message);
    const err = toTrellisError(cause, 'add', '100.64.0.0/26 via 198.18.0.2');
    t.equal(err.code, code, message);
    t.same(err.details, { errno, op: 'add', route: '100.64.0.0/26 via 198.18.0.2' });
    t.equal(err.cause, cause, 'cause kept');
    t.match(err.message, new RegExp(`^netlink add 100\\.64\\.0\\.0/26 via 198\\.18\\.0\\.2: ${errno}`));
  }
  t.ok(isTransient(toTrellisError(new Error('Request rejected: EEXIST'), 'add', 'x')), 'EEXIST: re-list and retry');
  t.notOk(isTransient(toTrellisError(new Error('Request rejected: EPERM'), 'add', 'x')));
  const already = new TrellisError(ErrorCode.NotFound, 'no device');
  t.equal(toTrellisError(already, 'add', 'x'), already, 'TrellisErrors pass through');
  t.match(toTrellisError('weird', 'dump', 'links').message, /dump links: UNKNOWN \(weird\)/);
});
