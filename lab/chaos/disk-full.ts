// Fault: one host's state directory full. A tiny tmpfs (256 KiB) is mounted
// over it (with the files it held copied in) and filled to the last byte;
// trellisd is SIGKILLed and started again on it, twice, while CNI churn goes
// on. The docs promise trellisd needs no free space to run, serve CNI or
// re-attach to its lease. Afterwards the filler goes, the tmpfs is unmounted
// and trellisd restarted once more on the original directory.

import { readdirSync, copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { ChaosFault } from './fault.js';

export const diskFull: ChaosFault = {
  name: 'disk-full',
  summary: "one host's state directory full (tiny tmpfs), trellisd SIGKILLed and restarted twice on it",
  promised: true,
  async run(world) {
    const host = world.cluster.hosts[0]!;
    const dir = host.daemon.stateDir;
    const files = readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile());
    const saved = join(dir, '..', `${dir.split('/').pop()}.chaos-saved`);
    execFileSync('mkdir', ['-p', saved]);
    for (const f of files) copyFileSync(join(dir, f), join(saved, f));
    host.daemon.kill();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0755', 'trellis-chaos', dir]);
    try {
      for (const f of files) copyFileSync(join(saved, f), join(dir, f));
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'filler')}`, 'bs=4k'], { stdio: 'ignore' });
      } catch {
        // dd stops with ENOSPC: the directory is full
      }
      for (let i = 0; i < 2; i++) {
        if (i > 0) host.daemon.kill();
        const mark = host.daemon.logs.length;
        await host.daemon.start('cluster view synced', 60_000);
        world.note(`${host.name} on a full state dir: restart ${i + 1} ${/re-attached to existing lease/.test(host.daemon.logs.slice(mark)) ? 're-attached to its lease' : 'did not re-attach'}`);
      }
      await new Promise((r) => setTimeout(r, world.holdMs));
    } finally {
      host.daemon.kill();
      execFileSync('umount', ['-l', dir]);
      execFileSync('rm', ['-rf', saved]);
      await host.daemon.start('cluster view synced', 60_000);
    }
    return {};
  },
};
