// The trust rules (src/core/claim-trust.ts): who holds a block given its claim
// and holds, and when an advertisement may stand for its node.
import t from 'tap';
import { checkAdvertiser, judgeClaim } from '../../src/core/claim-trust.js';

t.test('a claim and its own hold: consistent', async (t) => {
  t.same(judgeClaim({ owner: 'a', createRevision: 10n }, [{ node: 'a', createRevision: 10n }]), { holder: 'a' });
  t.same(judgeClaim(undefined, []), { holder: undefined }, 'nothing claimed, nothing held');
  t.same(judgeClaim({ owner: 'a', createRevision: 10n }, []), { holder: 'a', unheld: true }, 'a claim from before holds stands, marked');
});

t.test('a claim rewritten to another owner stays with the first holder', async (t) => {
  const v = judgeClaim({ owner: 'y', createRevision: 10n }, [{ node: 'a', createRevision: 10n }]);
  t.equal(v.holder, 'a');
  t.match((v as { conflict?: string }).conflict, /claim names y but a holds the block since revision 10/);
  const forgedHold = judgeClaim({ owner: 'y', createRevision: 30n }, [{ node: 'y', createRevision: 30n }, { node: 'a', createRevision: 10n }]);
  t.equal(forgedHold.holder, 'a', 'delete and re-create with a hold of its own: the older hold still wins');
  t.match((forgedHold as { conflict?: string }).conflict, /claim names y/);
});

t.test('a claim deleted while held, and a second hold', async (t) => {
  const gone = judgeClaim(undefined, [{ node: 'a', createRevision: 10n }]);
  t.equal(gone.holder, 'a');
  t.match((gone as { conflict?: string }).conflict, /claim missing/);
  const doubled = judgeClaim({ owner: 'a', createRevision: 10n }, [{ node: 'a', createRevision: 10n }, { node: 'y', createRevision: 12n }]);
  t.equal(doubled.holder, 'a');
  t.match((doubled as { conflict?: string }).conflict, /y also holds the block/);
});

t.test('an advertisement stands for its node only with its lease, subnet and host IP', async (t) => {
  const node = { subnet: 's1', hostIP: '198.18.1.10', lease: '5' };
  const a = { node: 'a', subnet: 's1', nextHop: '198.18.1.10', lease: '5' };
  t.equal(checkAdvertiser(a, node), undefined);
  t.match(checkAdvertiser(a, undefined), /no valid node record/);
  t.match(checkAdvertiser({ ...a, lease: '0' }, node), /not written under a lease/);
  t.match(checkAdvertiser({ ...a, lease: '6' }, node), /lease 6 is not the lease 5/);
  t.match(checkAdvertiser({ ...a, nextHop: '198.18.1.99' }, node), /next hop 198\.18\.1\.99 is not the host IP 198\.18\.1\.10/);
  t.match(checkAdvertiser({ ...a, subnet: 's2' }, node), /subnet s2 is not the subnet s1/);
});
