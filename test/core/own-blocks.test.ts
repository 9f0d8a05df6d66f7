// The advertised block set: claims show before the watch sees them, releases
// are withdrawn before the record goes, stale views never undo either.
import t from 'tap';
import { OwnBlocks } from '../../src/core/own-blocks.js';

t.test('a claim is advertised before the view has it, and a stale view does not drop it', async (t) => {
  const own = new OwnBlocks();
  t.ok(own.setView(['100.96.0.0/26']));
  own.claim('100.96.0.64/26');
  t.same(own.current(), ['100.96.0.0/26', '100.96.0.64/26']);
  t.notOk(own.setView(['100.96.0.0/26']), 'an older view changes nothing');
  t.same(own.current(), ['100.96.0.0/26', '100.96.0.64/26']);
  t.notOk(own.setView(['100.96.0.0/26', '100.96.0.64/26']), 'the view caught up');
  t.ok(own.setView(['100.96.0.0/26']), 'once seen, the view is the authority again');
  t.same(own.current(), ['100.96.0.0/26']);
});

t.test('a release is withdrawn first and stays withdrawn until the record is gone', async (t) => {
  const own = new OwnBlocks();
  own.setView(['100.96.0.0/26', '100.96.0.64/26']);
  own.release('100.96.0.64/26');
  t.same(own.current(), ['100.96.0.0/26']);
  t.notOk(own.setView(['100.96.0.0/26', '100.96.0.64/26']), 'the record still exists: stays withdrawn');
  t.notOk(own.setView(['100.96.0.0/26']), 'record deleted');
  t.ok(own.setView(['100.96.0.0/26', '100.96.0.64/26']), 'claimed again later: advertised again');
  t.same(own.current(), ['100.96.0.0/26', '100.96.0.64/26']);
});

t.test('a release that did not happen is advertised again', async (t) => {
  const own = new OwnBlocks();
  own.setView(['100.96.0.0/26', '100.96.0.64/26']);
  own.release('100.96.0.64/26');
  own.keep('100.96.0.64/26');
  t.same(own.current(), ['100.96.0.0/26', '100.96.0.64/26']);
  own.release('100.96.0.128/26');
  t.same(own.current(), ['100.96.0.0/26', '100.96.0.64/26'], 'releasing a block not in the view changes nothing');
  own.claim('100.96.0.64/26');
  t.same(own.current(), ['100.96.0.0/26', '100.96.0.64/26'], 'claiming a block already seen adds nothing pending');
});

t.test('lost: blocks the view took away that this node did not give back', async (t) => {
  const own = new OwnBlocks();
  own.setView(['100.96.0.0/26', '100.96.0.64/26', '100.96.0.128/26']);
  own.release('100.96.0.64/26');
  own.claim('100.96.1.0/26');
  t.same(own.lost(['100.96.0.0/26']), ['100.96.0.128/26'], 'a released block is not lost, a claim not yet seen is not either');
  t.same(own.lost(['100.96.0.0/26', '100.96.0.64/26', '100.96.0.128/26']), [], 'nothing lost when the view keeps them');
  own.setView([]);
  t.same(own.lost([]), [], 'once the view dropped them, nothing more is lost');
});
