// trellisd and trellisctl against an etcd that requires client certificates:
// with CA, certificate and key both work; without them each fails with a
// message that names the missing setting, never a stack trace.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { readFileSync } from 'node:fs';
import { startEtcd } from '../../lab/etcd.js';
import { daemon, runCli, SAMPLE_TOPOLOGY } from '../../lab/trellis.js';
import { loadTopology } from '../../src/core/topology-parse.js';
import { TopologySchema } from '../../src/gen/trellis/v1/records_pb.js';
import { encodeRecord } from '../../src/state/records.js';
import { topologyToRecord } from '../../src/state/topology-record.js';

t.test('client-certificate auth', async (t) => {
  const etcd = await startEtcd(t, { tls: true });
  const tls = etcd.tls;
  if (tls === undefined) throw new Error('no TLS files');
  const client = new Etcd3({
    hosts: etcd.endpoint,
    credentials: { rootCertificate: readFileSync(tls.ca), certChain: readFileSync(tls.cert), privateKey: readFileSync(tls.key) },
  });
  t.teardown(() => client.close());
  const topology = loadTopology(SAMPLE_TOPOLOGY, 'test');
  await client.put('/trellis/v1/topology').value(encodeRecord(TopologySchema, topologyToRecord(topology, 1n, Date.now())));

  t.test('with CA, certificate and key the daemon registers', async (t) => {
    const d = daemon(t, {
      etcd: etcd.endpoint,
      nodeName: 'tls-node',
      hostIP: '198.18.1.30',
      args: ['--etcd-tls-ca', tls.ca, '--etcd-tls-cert', tls.cert, '--etcd-tls-key', tls.key],
    });
    await d.start();
    t.equal(await client.get('/trellis/v1/nodes/tls-node').exists(), true, 'node record written over TLS');
    await d.destroy();
  });

  t.test('environment variables work like flags', async (t) => {
    const d = daemon(t, {
      etcd: etcd.endpoint,
      nodeName: 'tls-env',
      hostIP: '198.18.1.31',
      env: { TRELLIS_ETCD_TLS_CA: tls.ca, TRELLIS_ETCD_TLS_CERT: tls.cert, TRELLIS_ETCD_TLS_KEY: tls.key },
    });
    await d.start();
    t.equal(await client.get('/trellis/v1/nodes/tls-env').exists(), true);
    await d.destroy();
  });

  t.test('without a CA the error names the missing setting', async (t) => {
    const r = runCli('daemon/trellisd', ['--withdraw', '--node-name', 'x', '--host-ip', '198.18.1.32', '--interface', 'eth0', '--etcd-endpoints', etcd.endpoint]);
    t.equal(r.code, 2);
    t.match(r.stderr, /no CA is configured \(etcd\.tls\.ca\)/);
  });

  t.test('without a client certificate the error says it is needed', async (t) => {
    const r = runCli('daemon/trellisd', [
      '--withdraw',
      '--node-name', 'x',
      '--host-ip', '198.18.1.32',
      '--interface', 'eth0',
      '--etcd-endpoints', etcd.endpoint,
      '--etcd-tls-ca', tls.ca,
      '--etcd-request-timeout', '2s',
    ]);
    t.equal(r.code, 1);
    t.match(r.stderr, /client certificate: set etcd\.tls\.cert and etcd\.tls\.key/);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  t.test('a certificate without its key is a configuration error', async (t) => {
    const r = runCli('daemon/trellisd', ['--check-config', '--host-ip', '198.18.1.32', '--interface', 'eth0', '--etcd-endpoints', etcd.endpoint, '--etcd-tls-ca', tls.ca, '--etcd-tls-cert', tls.cert]);
    t.equal(r.code, 2);
    t.match(r.stderr, /etcd\.tls\.cert and etcd\.tls\.key must be given together/);
  });

  t.test('trellisctl nodes with CA, certificate and key lists a node registered over TLS', async (t) => {
    const d = daemon(t, {
      etcd: etcd.endpoint,
      nodeName: 'tls-ctl',
      hostIP: '198.18.1.33',
      args: ['--etcd-tls-ca', tls.ca, '--etcd-tls-cert', tls.cert, '--etcd-tls-key', tls.key],
    });
    await d.start();
    const tlsFlags = ['--etcd-tls-ca', tls.ca, '--etcd-tls-cert', tls.cert, '--etcd-tls-key', tls.key];
    const r = runCli('src/cli/trellisctl', ['nodes', '--etcd', etcd.endpoint, ...tlsFlags, '-o', 'json']);
    t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.trim()})`);
    t.equal(r.stderr, '');
    t.match(r.stdout, /"tls-ctl"/, 'the node registered over TLS is listed');
    t.match(r.stdout, /198\.18\.1\.33/, 'with its host IP');
    const table = runCli('src/cli/trellisctl', ['nodes', '--etcd', etcd.endpoint, ...tlsFlags]);
    t.equal(table.code, 0, 'table output: exit 0');
    t.match(table.stdout, /^tls-ctl\s+live\s+subnet-a1\s/m, 'table row for the node');
    await d.destroy();
  });

  t.test('trellisctl without a client certificate: exit 1, says the certificate is needed', async (t) => {
    const r = runCli('src/cli/trellisctl', ['nodes', '--etcd', etcd.endpoint, '--etcd-tls-ca', tls.ca, '--etcd-request-timeout', '2s']);
    t.equal(r.code, 1, 'exit 1');
    t.equal(r.stdout, '', 'nothing on stdout');
    t.match(r.stderr, /client certificate: set etcd\.tls\.cert and etcd\.tls\.key, or --etcd-tls-cert\/--etcd-tls-key/);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
    t.equal(r.stderr.trimEnd().split('\n').length, 1, 'one line');
  });

  t.test('trellisctl without any TLS files: exit 1, says the CA is missing', async (t) => {
    const r = runCli('src/cli/trellisctl', ['nodes', '--etcd', etcd.endpoint]);
    t.equal(r.code, 1, 'exit 1');
    t.equal(r.stdout, '', 'nothing on stdout');
    t.match(r.stderr, /no CA is configured \(etcd\.tls\.ca\)/);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });
});
