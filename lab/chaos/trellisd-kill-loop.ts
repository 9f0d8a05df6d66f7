// Fault: one trellisd SIGKILLed and started again, three times in a row. A
// crash restarted within the hold time re-attaches to its lease: the docs
// promise peers keep its routes and its pods lose nothing.

import type { ChaosFault } from './fault.js';

export const trellisdKillLoop: ChaosFault = {
  name: 'trellisd-kill-loop',
  summary: 'one trellisd SIGKILLed and restarted 3 times',
  promised: true,
  async run(world) {
    const host = world.cluster.hosts[1] ?? world.cluster.hosts[0]!;
    for (let i = 0; i < 3; i++) {
      host.daemon.kill();
      const mark = host.daemon.logs.length;
      await host.daemon.start('cluster view synced', 60_000);
      world.note(`${host.name}: restart ${i + 1} ${/re-attached to existing lease/.test(host.daemon.logs.slice(mark)) ? 're-attached to its lease' : 'did not re-attach'}`);
    }
    return {};
  },
};
