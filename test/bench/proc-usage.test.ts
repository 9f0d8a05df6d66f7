// bench/lib/proc-usage.ts: settle() waits while a process is busy and returns
// once it has been quiet for two windows in a row.
import t from 'tap';
import { spawn } from 'node:child_process';
import { settle, usage } from '../../bench/lib/proc-usage.js';

function child(script: string) {
  const c = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  t.teardown(() => void c.kill('SIGKILL'));
  return c;
}

t.test('a sleeping process settles after two quiet windows', async (t) => {
  const c = child('setTimeout(() => {}, 60_000)');
  await new Promise((r) => setTimeout(r, 300)); // past its start-up
  const waited = await settle(c.pid as number, { windowMs: 200, maxMs: 10_000 });
  t.ok(waited >= 400, `at least two windows (${Math.round(waited)} ms)`);
  t.ok(waited < 10_000, 'well before the bound');
});

t.test('a busy process is waited for until the bound', async (t) => {
  const c = child('for (;;) {}');
  const before = usage(c.pid as number).cpuSeconds;
  const waited = await settle(c.pid as number, { windowMs: 200, maxMs: 1_500 });
  t.ok(waited >= 1_500, `waited the whole bound (${Math.round(waited)} ms)`);
  t.ok(usage(c.pid as number).cpuSeconds > before, 'it was busy meanwhile');
});
