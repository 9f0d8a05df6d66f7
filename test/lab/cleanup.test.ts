// Tests of the cleanup registry: cleanups run newest first on normal exit,
// uncaught exceptions, unhandled rejections and SIGINT/SIGTERM/SIGHUP (after
// which the process still dies of the signal); unregistered ones never run;
// tap teardown integration.

import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTeardown, ownedTempDir, pendingCleanups, registerCleanup, runCleanups, sweepTempDirs } from '../../lab/cleanup.js';
import { waitForExit } from '../../lab/pids.js';
import { runFixture } from '../fixtures/run-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-cleanup-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const cases: Array<{ mode: string; signal?: NodeJS.Signals; code: number | null }> = [
  { mode: 'exit', code: 0 },
  { mode: 'throw', code: 1 },
  { mode: 'reject', code: 1 },
  { mode: 'wait', signal: 'SIGTERM', code: null },
  { mode: 'wait', signal: 'SIGINT', code: null },
  { mode: 'wait', signal: 'SIGHUP', code: null },
];

for (const c of cases) {
  t.test(`cleanups run on ${c.signal ?? c.mode}`, async (t) => {
    const file = join(dir, `${c.mode}-${c.signal ?? 'none'}.log`);
    const run = await runFixture('cleanup-child.ts', [c.mode, file]);
    t.equal(run.firstLine, 'ready');
    if (c.signal !== undefined) run.child.kill(c.signal);
    const end = await run.ended();
    t.notOk(end.timedOut, 'ended by itself');
    t.equal(end.code, c.code, 'exit code');
    t.equal(end.signal, c.signal ?? null, 'died of the signal it got');
    t.equal(readFileSync(file, 'utf8'), 'last\nfirst\n', 'newest first, unregistered skipped, failures contained');
    t.match(end.stderr, /test cleanup failed: .*a failing cleanup/, 'a failing cleanup is reported');
  });
}

t.test('in-process registry', async (t) => {
  const ran: string[] = [];
  const before = pendingCleanups();
  const un = registerCleanup(() => ran.push('a'));
  registerCleanup(() => ran.push('b'));
  t.equal(pendingCleanups(), before + 2);
  un();
  t.equal(pendingCleanups(), before + 1);
  // Only the cleanups registered here exist in this process at this point.
  t.equal(before, 0, 'no other cleanups registered in this test process');
  runCleanups();
  t.same(ran, ['b']);
  t.equal(pendingCleanups(), 0);
  runCleanups();
  t.same(ran, ['b'], 'a cleanup runs once');
});

t.test('onTeardown registers with the test', async (t) => {
  const registered: Array<() => unknown> = [];
  onTeardown({ teardown: (fn) => registered.push(fn) }, () => 'done');
  t.equal(registered.length, 1);
  t.equal(registered[0]?.(), 'done');
  onTeardown(undefined, () => t.fail('never called'));

  let tornDown = false;
  await t.test('owner', async (st) => {
    onTeardown(st, () => {
      tornDown = true;
    });
    st.notOk(tornDown, 'not before the test ends');
  });
  t.ok(tornDown, 'after the subtest ended');
});

t.test('ownedTempDir sweeps directories of dead processes only', async (t) => {
  const dead = spawn('true');
  await waitForExit(dead);
  const stale = join(tmpdir(), `trellis-sweeptest-${dead.pid}-abc`);
  const live = join(tmpdir(), `trellis-sweeptest-${process.ppid}-abc`);
  const other = join(tmpdir(), `trellis-othertest-${dead.pid}-abc`);
  for (const d of [stale, live, other]) mkdirSync(d, { recursive: true });
  let mine = '';
  t.teardown(() => {
    for (const d of [stale, live, other, mine]) if (d !== '') rmSync(d, { recursive: true, force: true });
  });
  mine = ownedTempDir('sweeptest');
  t.match(mine, new RegExp(`trellis-sweeptest-${process.pid}-`), 'named with our PID');
  t.ok(existsSync(mine));
  t.notOk(existsSync(stale), 'dead process\'s directory removed');
  t.ok(existsSync(live), 'live process\'s directory kept');
  t.ok(existsSync(other), 'other kinds untouched');
  t.throws(() => ownedTempDir('../x'), /bad kind/);
  const swept = sweepTempDirs();
  t.ok(swept.includes(`trellis-othertest-${dead.pid}-abc`), 'sweeping every kind removes the other kind too');
  t.notOk(existsSync(other));
  t.ok(existsSync(live) && existsSync(mine), 'live processes\' directories kept');
  t.throws(() => sweepTempDirs('a/b'), /bad kind/);
});
