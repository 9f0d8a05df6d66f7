// The pure part of egress masquerade (src/core/egress.ts): the default
// decision (on only in a VPC whose CIDRs do not hold the pod network), the
// destinations left untranslated, and the nft script, which names Trellis's
// own table only and replaces it in one transaction. The egress.* keys:
// defaults, flags and the problems reported for bad CIDRs.
import t from 'tap';
import { formatPrefix, parsePrefix } from '../../src/core/cidr.js';
import { decideMasquerade, egressRemoveScript, egressRule, egressScript, untranslatedDestinations } from '../../src/core/egress.js';
import { loadConfig } from '../../src/config/load.js';
import { ErrorCode, hasCode } from '../../src/errors.js';

const pods = parsePrefix('100.96.0.0/16');
const p = (s: string) => parsePrefix(s);

t.test('the default decision', async (t) => {
  const cases: Array<[string, Parameters<typeof decideMasquerade>[0], boolean, RegExp]> = [
    ['plain host', { configured: undefined, vpcEnabled: false, vpcCidrs: undefined, podNetwork: pods }, false, /no VPC/],
    ['plain host, set on', { configured: true, vpcEnabled: false, vpcCidrs: undefined, podNetwork: pods }, true, /set to true/],
    ['VPC, pods outside its CIDRs', { configured: undefined, vpcEnabled: true, vpcCidrs: [p('198.18.0.0/16'), p('198.19.0.0/16')], podNetwork: pods }, true, /lies outside the VPC CIDR\(s\) 198\.18\.0\.0\/16, 198\.19\.0\.0\/16/],
    ['VPC, pods inside a secondary CIDR', { configured: undefined, vpcEnabled: true, vpcCidrs: [p('198.18.0.0/16'), p('100.64.0.0/10')], podNetwork: pods }, false, /inside VPC CIDR 100\.64\.0\.0\/10/],
    ['VPC, pods overlapping but not inside', { configured: undefined, vpcEnabled: true, vpcCidrs: [p('100.96.0.0/17')], podNetwork: pods }, true, /outside/],
    ['VPC, pods inside, set on', { configured: true, vpcEnabled: true, vpcCidrs: [p('100.64.0.0/10')], podNetwork: pods }, true, /set to true/],
    ['VPC, pods outside, set off', { configured: false, vpcEnabled: true, vpcCidrs: [p('198.18.0.0/16')], podNetwork: pods }, false, /set to false/],
    ['VPC CIDRs unknown', { configured: undefined, vpcEnabled: true, vpcCidrs: undefined, podNetwork: pods }, false, /not known/],
    ['IPv6 pod network', { configured: undefined, vpcEnabled: true, vpcCidrs: [p('198.18.0.0/16')], podNetwork: p('fd00::/48') }, false, /not IPv4/],
  ];
  for (const [name, input, on, reason] of cases) {
    const d = decideMasquerade(input);
    t.equal(d.masquerade, on, name);
    t.match(d.reason, reason, `${name}: reason`);
  }
});

t.test('untranslated destinations: the pod network always, the rest merged', async (t) => {
  const rules = { podNetwork: pods, nonMasquerade: [p('198.18.0.0/24'), p('198.18.1.0/24'), p('100.96.4.0/24'), p('fd00::/64')], hostIP: '198.18.1.10' };
  t.same(untranslatedDestinations(rules).map(formatPrefix), ['100.96.0.0/16', '198.18.0.0/23'], 'nested and adjacent prefixes merged; IPv6 left out');
  const text = egressScript(rules);
  t.match(text, /elements = \{ 100\.96\.0\.0\/16, 198\.18\.0\.0\/23 \}/, 'the set holds them');
  t.same(untranslatedDestinations({ ...rules, nonMasquerade: [] }).length, 1, 'no non-masquerade CIDRs: the pod network only');
});

t.test('the script: one table of its own, replaced in one transaction', async (t) => {
  const rules = { podNetwork: pods, nonMasquerade: [p('198.18.0.0/16')], hostIP: '198.18.1.10' };
  const text = egressScript(rules);
  const lines = text.split('\n');
  t.same(lines.slice(0, 3), ['table ip trellis', 'delete table ip trellis', 'table ip trellis {'], 'ensure, delete, define');
  t.same([...text.matchAll(/\btable (\S+) (\S+)/g)].map((m) => `${m[1]} ${m[2]}`), ['ip trellis', 'ip trellis', 'ip trellis'], 'no other table is named');
  t.notMatch(text, /flush ruleset|\bflush\b/, 'nothing is flushed');
  t.match(text, /type nat hook postrouting priority srcnat; policy accept;/);
  t.equal(egressRule(rules), 'ip saddr 100.96.0.0/16 ip daddr != @untranslated counter snat to 198.18.1.10');
  t.ok(text.includes(`    ${egressRule(rules)}\n`), 'the rule is in the chain');
  t.equal(egressRemoveScript(), 'table ip trellis\ndelete table ip trellis\n', 'removal works whether or not the table exists');
  t.throws(() => egressScript({ ...rules, podNetwork: p('fd00::/48') }), { code: ErrorCode.Config });
  t.throws(() => egressScript({ ...rules, hostIP: 'fd00::1' }), { code: ErrorCode.Config });
});

const base = new Map([['hostIP', '198.18.1.10'], ['interface', 'eth0'], ['nodeName', 'n1']]);

t.test('egress.* keys: defaults, flags, environment, file lists', async (t) => {
  t.same(loadConfig({ flags: base, env: {} }).egress, { masquerade: undefined, nonMasqueradeCidrs: undefined }, 'both decided later');
  const c = loadConfig({ flags: new Map([...base, ['egress.masquerade', 'true']]), env: { TRELLIS_EGRESS_NON_MASQUERADE_CIDRS: '198.18.0.0/16, 198.19.0.0/24' } });
  t.same(c.egress, { masquerade: true, nonMasqueradeCidrs: ['198.18.0.0/16', '198.19.0.0/24'] });
  t.same(loadConfig({ flags: new Map([...base, ['egress.nonMasqueradeCidrs', '']]), env: {} }).egress.nonMasqueradeCidrs, [], 'an empty list: none');
});

t.test('egress.* keys: bad values are named', async (t) => {
  const flags = new Map([...base, ['egress.masquerade', 'yes'], ['egress.nonMasqueradeCidrs', '10.0.0.1/8,fd00::/64,banana']]);
  let err: unknown;
  try {
    loadConfig({ flags, env: {} });
  } catch (e) {
    err = e;
  }
  t.ok(hasCode(err, ErrorCode.Config), 'a configuration error');
  const text = (err as Error).message;
  t.match(text, /--egress-masquerade: expected true or false, got "yes"/);
  t.match(text, /egress\.nonMasqueradeCidrs: 10\.0\.0\.1\/8 is not a canonical prefix: host bits are set \(did you mean 10\.0\.0\.0\/8\?\)/);
  t.match(text, /egress\.nonMasqueradeCidrs: fd00::\/64 is not an IPv4 prefix/);
  t.match(text, /egress\.nonMasqueradeCidrs: invalid CIDR prefix \(missing "\/length"\): "banana"/);
});
