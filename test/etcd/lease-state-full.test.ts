// A lease lost while the state directory is full (no space for the new lease
// id): the keeper must still take a new lease and report it granted, so the
// node's records are published again; only a later crash-restart cannot
// re-attach to it. The state directory is a 64 KiB tmpfs filled to the last
// byte (root only).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { connectEtcd } from '../../src/etcd/client.js';
import { LeaseKeeper, hex } from '../../src/etcd/lease-keeper.js';
import { startEtcd } from '../../lab/etcd.js';
import { needRoot } from '../../lab/netns.js';

const skip = needRoot();
const log = pino({ level: 'silent' });

t.test('a lease lost while the state directory is full is replaced all the same', { skip }, async (t) => {
  const etcd = await startEtcd(t);
  const dir = mkdtempSync(join(tmpdir(), 'trellis-lease-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'trellis-test', dir]);
  t.teardown(() => {
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  t.teardown(() => client.close());
  const k = new LeaseKeeper(client, { ttlSeconds: 3, stateFile: join(dir, 'lease.json'), log });
  const { id } = await k.start();
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'filler')}`, 'bs=4k'], { stdio: 'ignore' });
  } catch {
    // ENOSPC: full
  }
  const granted: string[] = [];
  k.on('granted', (newId) => granted.push(newId));
  await etcd.etcdctl(['lease', 'revoke', hex(id)]);
  await k.tick();
  t.equal(granted.length, 1, 'a new lease was granted and reported');
  t.not(granted[0], id);
  t.equal(k.state, 'alive', 'and it is alive');
  t.equal(k.id, granted[0]);
  await k.tick();
  t.equal(granted.length, 1, 'no further lease taken on the next round');
  k.stop();
});
