// The vpc.* configuration keys: defaults, flags and environment, and the
// problems reported for bad values.
import t from 'tap';
import { loadConfig } from '../../src/config/load.js';
import { probeEndpoint } from '../../src/core/endpoints.js';
import { hasCode, ErrorCode } from '../../src/errors.js';

const base = new Map([
  ['hostIP', '198.18.1.10'],
  ['interface', 'eth0'],
  ['nodeName', 'n1'],
]);

t.test('defaults: VPC mode off, AWS limits and the real metadata address', async (t) => {
  const c = loadConfig({ flags: base, env: {} });
  t.same(c.vpc, {
    enabled: false,
    endpoint: '',
    region: '',
    vpcId: '',
    routeLimit: 500,
    metadataEndpoint: 'http://169.254.169.254',
    disableSourceDestCheck: true,
    verifyInterval: 30_000,
    probeInterval: 1000,
    probeMisses: 2,
    recoverAfter: 10_000,
    unreachableAfter: 15_000,
    writeBurst: 50,
    writesPerSecond: 5,
    readBurst: 100,
    readsPerSecond: 20,
  });
});

t.test('flags and environment', async (t) => {
  const flags = new Map([
    ...base,
    ['vpc.enabled', 'true'],
    ['vpc.endpoint', 'http://198.18.1.1:5000'],
    ['vpc.vpcId', 'vpc-0abc123'],
    ['vpc.routeLimit', '8'],
    ['vpc.probeInterval', '500ms'],
  ]);
  const c = loadConfig({
    flags,
    env: { TRELLIS_VPC_REGION: 'eu-west-3', TRELLIS_VPC_METADATA_ENDPOINT: 'http://198.18.1.1:5000', TRELLIS_VPC_RECOVER_AFTER: '2s', TRELLIS_VPC_UNREACHABLE_AFTER: '4s', TRELLIS_VPC_DISABLE_SOURCE_DEST_CHECK: 'false' },
  });
  t.match(c.vpc, {
    enabled: true,
    endpoint: 'http://198.18.1.1:5000',
    region: 'eu-west-3',
    vpcId: 'vpc-0abc123',
    routeLimit: 8,
    metadataEndpoint: 'http://198.18.1.1:5000',
    disableSourceDestCheck: false,
    probeInterval: 500,
    recoverAfter: 2000,
    unreachableAfter: 4000,
  });
});

t.test('bad values are reported together', async (t) => {
  const flags = new Map([
    ...base,
    ['vpc.endpoint', 'ec2.example'],
    ['vpc.region', 'Mars'],
    ['vpc.vpcId', 'subnet-1'],
    ['vpc.routeLimit', '0'],
    ['vpc.metadataEndpoint', 'http://169.254.169.254/latest'],
    ['vpc.probeMisses', 'two'],
  ]);
  let err: unknown;
  try {
    loadConfig({ flags, env: {} });
  } catch (e) {
    err = e;
  }
  t.ok(hasCode(err, ErrorCode.Config));
  const text = String((err as Error).message);
  t.match(text, /--vpc-route-limit: 0 is out of range 1\.\.1000/);
  t.match(text, /--vpc-probe-misses: expected an integer, got "two"/, 'every problem at once');
  t.match(text, /--vpc-probe-misses: expected an integer, got "two"/);
  t.match(text, /vpc\.endpoint must be a URL like http:\/\/host:port \(no path\), got "ec2\.example"/);
  t.match(text, /vpc\.metadataEndpoint must be a URL like http:\/\/host:port \(no path\)/);
  t.match(text, /vpc\.region must look like us-east-1, got "Mars"/);
  t.match(text, /vpc\.vpcId must look like vpc-0abc123, got "subnet-1"/);
});

t.test('vpc.routeLimit: up to the AWS maximum of 1000, with a clear error above it', async (t) => {
  t.equal(loadConfig({ flags: new Map([...base, ['vpc.routeLimit', '1000']]), env: {} }).vpc.routeLimit, 1000, '1000 is accepted');
  t.equal(loadConfig({ flags: base, env: { TRELLIS_VPC_ROUTE_LIMIT: '1' } }).vpc.routeLimit, 1, '1 is accepted');
  let err: unknown;
  try {
    loadConfig({ flags: base, env: { TRELLIS_VPC_ROUTE_LIMIT: '1001' } });
  } catch (e) {
    err = e;
  }
  t.ok(hasCode(err, ErrorCode.Config));
  t.match(String((err as Error).message), /TRELLIS_VPC_ROUTE_LIMIT: 1001 is out of range 1\.\.1000 \(AWS allows at most 1000 routes per route table \(quota L-93826ACB, default 500\)/);
});

t.test('the endpoint peers probe', async (t) => {
  t.equal(probeEndpoint('127.0.0.1:9653', '198.18.1.10'), '', 'loopback is not probeable');
  t.equal(probeEndpoint('[::1]:9653', '198.18.1.10'), '');
  t.equal(probeEndpoint('0.0.0.0:9653', '198.18.1.10'), '198.18.1.10:9653', 'wildcard becomes the host IP');
  t.equal(probeEndpoint('198.18.1.10:9700', '198.18.1.10'), '198.18.1.10:9700');
  t.equal(probeEndpoint('', '198.18.1.10'), '', 'endpoint off');
});
