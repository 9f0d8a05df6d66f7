// The Kubernetes manifests in deploy/kubernetes, validated offline with the
// kubernetes-models schemas (each object), and cross-checked against
// trellisd's configuration: the ConfigMap's trellisd.yaml loads, every
// environment variable names a configuration key, the host paths are mounted
// where the configuration points (the same path on the host and in the
// container: the configuration list names the socket by its host path), the
// probes hit http.listen, and the topology parses.
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { Namespace, ServiceAccount, ConfigMap } from 'kubernetes-models/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { loadConfig } from '../../src/config/load.js';
import { CONFIG_KEYS, envName } from '../../src/config/schema.js';
import { loadTopology } from '../../src/core/topology-parse.js';
import { ROOT } from '../../lab/trellis.js';

const DIR = join(ROOT, 'deploy', 'kubernetes');
type Obj = Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string } };

function objects(file: string): Obj[] {
  return parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((d) => d.toJS() as Obj);
}

const validators: Record<string, (o: Obj) => void> = {
  Namespace: (o) => new Namespace(o as never).validate(),
  ServiceAccount: (o) => new ServiceAccount(o as never).validate(),
  ConfigMap: (o) => new ConfigMap(o as never).validate(),
  DaemonSet: (o) => new DaemonSet(o as never).validate(),
};

const kustomization = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as { namespace: string; resources: string[] };
const all = kustomization.resources.flatMap((f) => objects(f).map((o) => ({ file: f, o })));
const find = <T>(kind: string): T => all.find((x) => x.o.kind === kind)?.o as T;

t.test('kustomization lists every manifest; every object validates', async (t) => {
  t.same([...kustomization.resources].sort(), readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort());
  t.same(all.map((x) => x.o.kind).sort(), ['ConfigMap', 'DaemonSet', 'Namespace', 'ServiceAccount']);
  for (const { file, o } of all) {
    const validate = validators[o.kind];
    t.ok(validate, `${file}: a validator for ${o.kind}`);
    t.doesNotThrow(() => validate?.(o), `${file}: ${o.kind} ${o.metadata.name} is valid`);
    if (o.kind !== 'Namespace') t.equal(o.metadata.namespace, kustomization.namespace, `${o.kind} in ${kustomization.namespace}`);
  }
  const broken = structuredClone(find<Obj>('DaemonSet')) as { spec: { template: { spec: { hostNetwork: unknown } } } } & Obj;
  broken.spec.template.spec.hostNetwork = 'yes';
  t.throws(() => validators.DaemonSet?.(broken), 'the validator rejects a wrong field type');
});

interface Container {
  args: string[];
  env: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  readinessProbe: { httpGet: { path: string; port: number } };
  livenessProbe: { httpGet: { path: string; port: number } };
  securityContext: { capabilities: { add: string[]; drop: string[] }; privileged: boolean };
  volumeMounts: Array<{ name: string; mountPath: string }>;
}
interface Volume {
  name: string;
  hostPath?: { path: string };
  configMap?: { name: string };
  secret?: { secretName: string; items: Array<{ key: string; path: string }> };
}
interface Ds {
  spec: {
    updateStrategy: { type: string; rollingUpdate: { maxUnavailable: number } };
    template: { spec: { hostNetwork: boolean; priorityClassName: string; tolerations: object[]; terminationGracePeriodSeconds: number; containers: Container[]; volumes: Volume[] } };
  };
}

t.test('the DaemonSet matches trellisd configuration keys and the ConfigMap', async (t) => {
  const ds = find<Ds>('DaemonSet');
  const pod = ds.spec.template.spec;
  const c = pod.containers[0] as Container;
  t.equal(pod.hostNetwork, true);
  t.equal(pod.priorityClassName, 'system-node-critical');
  t.same(pod.tolerations, [{ operator: 'Exists' }], 'tolerates every taint');
  t.same(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
  t.same(c.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
  t.equal(c.securityContext.privileged, false);

  const envNames = new Set(CONFIG_KEYS.map((k) => envName(k.path)));
  for (const e of c.env) t.ok(envNames.has(e.name), `${e.name} is a configuration key's variable`);
  t.same(
    Object.fromEntries(c.env.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath])),
    { TRELLIS_NODE_NAME: 'spec.nodeName', TRELLIS_HOST_IP: 'status.hostIP' },
    'nodeName and hostIP from the downward API',
  );

  const cm = find<{ metadata: { name: string }; data: Record<string, string> }>('ConfigMap');
  const configVolume = pod.volumes.find((v) => v.configMap?.name === cm.metadata.name);
  const mountOf = (name: string | undefined): string | undefined => c.volumeMounts.find((m) => m.name === name)?.mountPath;
  const configFile = c.args[c.args.indexOf('--config') + 1] as string;
  t.equal(dirname(configFile), mountOf(configVolume?.name), '--config points into the ConfigMap mount');
  t.ok(cm.data[basename(configFile)] !== undefined, `the ConfigMap holds ${basename(configFile)}`);

  const dir = mkdtempSync(join(tmpdir(), 'trellis-manifests-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'trellisd.yaml'), cm.data[basename(configFile)] as string);
  const env = { TRELLIS_NODE_NAME: 'node-1', TRELLIS_HOST_IP: '198.18.1.10' };
  const config = loadConfig({ file: join(dir, 'trellisd.yaml'), env });
  t.equal(config.cni.install, true, 'cni.install is on');
  t.equal(config.nodeName, 'node-1');
  t.equal(config.hostIP, '198.18.1.10');

  const hostMount = (path: string, what: string): void => {
    const mount = c.volumeMounts.find((m) => m.mountPath === path);
    const volume = pod.volumes.find((v) => v.name === mount?.name);
    t.equal(volume?.hostPath?.path, path, `${what} ${path}: a host path mounted at the same path`);
  };
  hostMount(dirname(config.ipam.socket), 'ipam.socket directory');
  hostMount(config.stateDir, 'stateDir');
  hostMount(config.cni.binDir, 'cni.binDir');
  hostMount(config.cni.confDir, 'cni.confDir');

  const tls = config.etcd.tls;
  const secret = pod.volumes.find((v) => v.secret !== undefined);
  t.ok(secret?.secret?.secretName, 'etcd TLS from a Secret');
  for (const file of [tls.ca, tls.cert, tls.key]) {
    t.equal(dirname(file ?? ''), mountOf(secret?.name), `${file} is in the Secret mount`);
    t.ok(secret?.secret?.items.some((i) => i.path === basename(file ?? '')), `the Secret provides ${basename(file ?? '')}`);
  }

  const [host, port] = config.http.listen.split(':');
  t.equal(host, '0.0.0.0', 'http.listen reachable by the kubelet');
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.equal(c.livenessProbe.httpGet.path, '/healthz');
  t.equal(c.readinessProbe.httpGet.port, Number(port));
  t.equal(c.livenessProbe.httpGet.port, Number(port));
  t.ok(pod.terminationGracePeriodSeconds * 1000 < config.holdTime, 'a replaced pod stops within holdTime: its successor keeps the lease');

  const topology = loadTopology(cm.data['topology.yaml'] as string, 'configmap topology.yaml');
  t.ok(topology.zones.length > 0, 'the ConfigMap topology parses');
});
