import t from 'tap';
import { chooseAddress, chooseRestingAddress, firstUnusedAddress, releasedAddresses } from '../../src/core/ipam-address.js';
import type { BlockRecord } from '../../src/core/ipam-store.js';

function rec(prefix: string, allocated: string[], released: Record<string, number> = {}): BlockRecord {
  const allocations: BlockRecord['allocations'] = {};
  for (const a of allocated) allocations[a] = { containerId: `c-${a}`, ifName: 'eth0', allocatedAt: 0 };
  return { prefix, subnet: 's', node: 'n', claimedAt: 0, allocations, released };
}

t.test('firstUnusedAddress: lowest address neither allocated nor released', async (t) => {
  const cases: Array<[BlockRecord, string | undefined, string]> = [
    [rec('100.64.0.0/30', []), '100.64.0.0', 'the network-looking first address is usable'],
    [rec('100.64.0.0/30', ['100.64.0.0', '100.64.0.1', '100.64.0.2']), '100.64.0.3', 'so is the broadcast-looking last one'],
    [rec('100.64.0.0/30', ['100.64.0.0'], { '100.64.0.1': 5 }), '100.64.0.2', 'released counts as used'],
    [rec('100.64.0.0/30', ['100.64.0.2']), '100.64.0.0', 'gaps are found from the start'],
    [rec('100.64.0.0/30', ['100.64.0.0', '100.64.0.1', '100.64.0.3'], { '100.64.0.2': 1 }), undefined, 'full'],
    [rec('100.64.0.0/30', ['100.64.0.9', 'junk'], { '::1': 1 }), '100.64.0.0', 'keys outside the block are ignored'],
    [rec('fd00::/126', ['fd00::', 'fd00::1']), 'fd00::2', 'IPv6'],
    [rec('100.64.0.0/32', []), '100.64.0.0', 'a one-address block'],
  ];
  for (const [r, want, name] of cases) t.equal(firstUnusedAddress(r), want, name);
});

t.test('chooseAddress: never-used first, then rested least recently freed first', async (t) => {
  const full = rec('100.64.0.4/30', ['100.64.0.4', '100.64.0.5'], { '100.64.0.6': 300, '100.64.0.7': 100 });
  const fresh = rec('100.64.0.0/30', ['100.64.0.0']);
  const old = rec('100.64.0.8/30', ['100.64.0.8', '100.64.0.9', '100.64.0.10'], { '100.64.0.11': 100 });
  const cases: Array<{ name: string; blocks: BlockRecord[]; now: number; want: unknown }> = [
    { name: 'fresh in the lowest block', blocks: [full, fresh], now: 0, want: { block: '100.64.0.0/30', address: '100.64.0.1', source: 'fresh' } },
    { name: 'nothing has rested', blocks: [full, old], now: 129, want: undefined },
    { name: 'rested, LRF; ties to the lower address', blocks: [old, full], now: 130, want: { block: '100.64.0.4/30', address: '100.64.0.7', source: 'rested' } },
    { name: 'only the rested one', blocks: [full], now: 329, want: { block: '100.64.0.4/30', address: '100.64.0.7', source: 'rested' } },
    { name: 'no blocks', blocks: [], now: 0, want: undefined },
  ];
  for (const c of cases) t.same(chooseAddress(c.blocks, c.now, 30), c.want, c.name);
  t.same(chooseRestingAddress([full, old]), { block: '100.64.0.4/30', address: '100.64.0.7', source: 'resting' }, 'resting fallback is LRF');
  t.equal(chooseRestingAddress([fresh]), undefined);
});

t.test('releasedAddresses skips allocated, foreign and unreadable keys and orders by time then address', async (t) => {
  const r = rec('100.64.0.0/29', ['100.64.0.1'], {
    '100.64.0.1': 1, // allocated again: not released any more
    '100.64.0.6': 7,
    '100.64.0.3': 7,
    '100.64.0.2': 9,
    '100.64.0.5': 2,
    '10.0.0.1': 0,
    'not-an-address': 0,
  });
  const v6 = rec('fd00::/125', [], { 'fd00::7': 7, 'fd00::3': 7 });
  t.same(
    releasedAddresses([r, v6]).map((x) => [x.address, x.freedAt]),
    [
      ['100.64.0.5', 2],
      ['100.64.0.3', 7],
      ['100.64.0.6', 7],
      ['fd00::3', 7],
      ['fd00::7', 7],
      ['100.64.0.2', 9],
    ],
  );
});
