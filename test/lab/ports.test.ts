// Tests of freePort/freePorts: ports are distinct, bindable on 127.0.0.1, and
// reserved with a lock file naming this process; stale locks are swept.

import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, freePorts, sweepStalePortLocks } from '../../lab/ports.js';

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

t.test('distinct, bindable, reserved', async (t) => {
  const ports = [...(await freePorts(20)), await freePort()];
  t.equal(new Set(ports).size, ports.length, 'all distinct');
  for (const p of ports) {
    t.ok(Number.isInteger(p) && p > 0 && p < 65536, `${p} is a port`);
    t.ok(await bindable(p), `${p} can be bound`);
    t.equal(readFileSync(join(tmpdir(), 'trellis-test-ports', String(p)), 'utf8'), String(process.pid),
      'lock file names this process');
  }
});

t.test('a port in use is not handed out', async (t) => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  const busy = typeof address === 'object' && address !== null ? address.port : 0;
  const ports = await freePorts(50);
  t.notOk(ports.includes(busy), 'the listening port is never returned');
});

t.test('locks of dead processes are swept, live ones kept', async (t) => {
  const mine = await freePort();
  const dead = spawn('true');
  await new Promise((resolve) => dead.once('exit', resolve));
  const stale = join(tmpdir(), 'trellis-test-ports', '1');
  writeFileSync(stale, String(dead.pid));
  t.teardown(() => rmSync(stale, { force: true }));
  t.ok(sweepStalePortLocks() >= 1, 'counts what it removed');
  t.notOk(existsSync(stale), 'the dead process\'s lock is gone');
  t.ok(existsSync(join(tmpdir(), 'trellis-test-ports', String(mine))), 'our own lock stays, and with it the directory');
});
