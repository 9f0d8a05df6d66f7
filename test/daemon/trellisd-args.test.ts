// trellisd's command-line parser, in-process and table-driven (the built
// program is exercised in trellisd-flags.test.ts).
import t from 'tap';
import { DaemonUsageError, knownFlags, parseDaemonArgs } from '../../daemon/trellisd-args.js';

t.test('values, switches and command options', async (t) => {
  const cases: Array<[string[], Record<string, string>]> = [
    [['--host-ip', '198.18.0.1'], { hostIP: '198.18.0.1' }],
    [['--host-ip=198.18.0.1'], { hostIP: '198.18.0.1' }],
    [['--ipam-socket', ''], { 'ipam.socket': '' }],
    [['--vpc-enabled'], { 'vpc.enabled': 'true' }],
    [['--no-vpc-enabled'], { 'vpc.enabled': 'false' }],
    [['--vpc-enabled=false'], { 'vpc.enabled': 'false' }],
    [['--vpc-enabled=TRUE'], { 'vpc.enabled': 'true' }],
    [['--vpc-enabled=0', '--routes-enabled=1'], { 'vpc.enabled': 'false', 'routes.enabled': 'true' }],
    [['--routes-enabled', 'false', '--vpc-enabled', 'TRUE'], { 'routes.enabled': 'false', 'vpc.enabled': 'true' }],
    [['--etcd-endpoints', 'http://127.0.0.1:2379,http://127.0.0.1:2380'], { 'etcd.endpoints': 'http://127.0.0.1:2379,http://127.0.0.1:2380' }],
  ];
  for (const [argv, flags] of cases) t.same(Object.fromEntries(parseDaemonArgs(argv).flags), flags, argv.join(' '));
  const a = parseDaemonArgs(['-c', 'f.yaml', '--check-config']);
  t.same([a.config, a.checkConfig, a.withdraw, a.help, a.version], ['f.yaml', true, false, false, false]);
  t.equal(parseDaemonArgs(['--config=g.yaml', '-h']).config, 'g.yaml');
  t.equal(parseDaemonArgs(['-h']).help, true);
  t.equal(parseDaemonArgs(['--version']).version, true);
});

t.test('mistakes are usage errors meant for the user', async (t) => {
  const cases: Array<[string[], string]> = [
    [['--bogus'], 'unknown option "--bogus"'],
    [['--hostip', 'x'], 'unknown option "--hostip" (did you mean "--host-ip"?)'],
    [['--no-vpc-enable'], 'unknown option "--no-vpc-enable" (did you mean "--no-vpc-enabled"?)'],
    [['--no-host-ip'], 'unknown option "--no-host-ip" (did you mean "--host-ip"?)'],
    [['-x'], 'unknown option "-x"'],
    [['--host-ip'], 'option "--host-ip" needs a value'],
    [['--host-ip', '--interface', 'eth0'], 'option "--host-ip" needs a value'],
    [['--config'], 'option "--config" needs a value'],
    [['--check-config=yes'], 'option "--check-config" takes no value'],
    [['--no-vpc-enabled=true'], 'option "--no-vpc-enabled" takes no value'],
    [['--vpc-enabled=maybe'], 'invalid value "maybe" for "--vpc-enabled": expected true or false (or write --vpc-enabled / --no-vpc-enabled)'],
    [['--vpc-enabled', 'yes'], 'unexpected argument "yes" (--vpc-enabled is a switch: write --vpc-enabled or --no-vpc-enabled, or --vpc-enabled=yes)'],
    [['run'], 'unexpected argument "run" (trellisd takes no arguments; settings are --flags)'],
    [['--', 'x'], 'unexpected argument "x" (trellisd takes no arguments)'],
  ];
  for (const [argv, message] of cases) {
    t.throws(() => parseDaemonArgs(argv), new DaemonUsageError(message), argv.join(' '));
  }
});

t.test('every configuration key has a flag, booleans a --no- form', async (t) => {
  const flags = knownFlags();
  t.ok(flags.includes('--etcd-endpoints'));
  t.ok(flags.includes('--no-routes-enabled'));
  t.notOk(flags.includes('--no-host-ip'));
  t.equal(new Set(flags).size, flags.length, 'no flag twice');
});
