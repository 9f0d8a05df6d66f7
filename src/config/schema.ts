// The trellisd configuration schema: every key, its type, default and meaning.
//
// One table drives everything: the YAML file parser, the command-line flags
// (key `etcd.tls.ca` ↔ flag `--etcd-tls-ca`), the environment variables
// (`TRELLIS_ETCD_TLS_CA`), `trellisd --help`, and the configuration reference
// docs/configuration.md (a test keeps it in step with this table).
// Precedence, highest first: flag, TRELLIS_* environment variable, the
// etcdctl variable of the same setting (ETCDCTL_ENDPOINTS, ETCDCTL_CACERT,
// ETCDCTL_CERT, ETCDCTL_KEY; `fallbackEnv`), file, default.

export type KeyType = 'string' | 'integer' | 'duration' | 'boolean' | 'list';

export interface ConfigKey {
  /** Dotted path in the YAML file, e.g. "etcd.tls.ca". */
  readonly path: string;
  readonly type: KeyType;
  /** Default value (durations in ms); undefined means "no default". */
  readonly default?: string | number | boolean | readonly string[];
  /** Shown instead of the default when the default is computed at run time. */
  readonly defaultText?: string;
  readonly required?: boolean;
  /** Masked in --check-config output and logs. */
  readonly secret?: boolean;
  readonly doc: string;
  /** etcdctl's environment variable for the same setting, read when the TRELLIS_ one is unset. */
  readonly fallbackEnv?: string;
  /** Inclusive bounds for integers and durations (durations in ms). */
  readonly min?: number;
  readonly max?: number;
  /** Said after an out-of-range value (why the bounds are what they are). */
  readonly rangeHint?: string;
}

export const CONFIG_KEYS: readonly ConfigKey[] = [
  {
    path: 'nodeName',
    type: 'string',
    defaultText: 'the host name',
    doc: 'Name of this node in the cluster; unique; letters, digits, ".", "_", "-". On Kubernetes, set TRELLIS_NODE_NAME from spec.nodeName (downward API).',
  },
  {
    path: 'hostIP',
    type: 'string',
    defaultText: 'detected: the address of `interface` (the instance metadata local-ipv4 when vpc.enabled)',
    doc: "This host's IP address in its subnet: the next hop for its pods.",
  },
  {
    path: 'subnet',
    type: 'string',
    defaultText: 'the subnet whose CIDR contains hostIP',
    doc: 'Id of the topology subnet this node belongs to.',
  },
  {
    path: 'interface',
    type: 'string',
    defaultText: 'detected: the interface holding hostIP, else that of the default route',
    doc: 'Host interface that carries hostIP; routes to same-subnet peers use it.',
  },
  {
    path: 'instanceId',
    type: 'string',
    default: '',
    doc: 'Cloud instance id of this host (VPC route target); empty off the cloud.',
  },
  {
    path: 'holdTime',
    type: 'duration',
    default: 6000,
    min: 3000,
    max: 10000,
    doc: "Lease TTL of this node's advertisement: peers drop its routes this long after it dies. Keepalives go out every third of it. Whole seconds, 3s to 10s.",
  },
  {
    path: 'restartHoldTime',
    type: 'duration',
    default: 30000,
    min: 0,
    max: 300000,
    doc: "How long peers keep this node's routes after a graceful stop (SIGTERM), so that a restart on a busy host never withdraws them: on stopping, the node's records are moved to a lease of this TTL that nobody renews. A node stopped for good is withdrawn this long after; a crash still within holdTime. Whole seconds; 0 or a value not above holdTime: only one last keepalive (the restart must then fit in holdTime).",
  },
  {
    path: 'stateDir',
    type: 'string',
    default: '/var/lib/trellis',
    doc: 'Directory for local state (the lease id that lets a restart keep its lease).',
  },
  {
    path: 'etcd.endpoints',
    type: 'list',
    default: ['http://127.0.0.1:2379'],
    fallbackEnv: 'ETCDCTL_ENDPOINTS',
    doc: 'etcd client URLs (comma-separated in flags and environment).',
  },
  {
    path: 'etcd.prefix',
    type: 'string',
    default: '/trellis',
    doc: 'Key prefix of all Trellis records in etcd.',
  },
  { path: 'etcd.tls.ca', type: 'string', fallbackEnv: 'ETCDCTL_CACERT', doc: 'CA certificate file that signed the etcd server certificate (https endpoints).' },
  { path: 'etcd.tls.cert', type: 'string', fallbackEnv: 'ETCDCTL_CERT', doc: 'Client certificate file, when etcd requires client certificates.' },
  { path: 'etcd.tls.key', type: 'string', fallbackEnv: 'ETCDCTL_KEY', doc: 'Client private key file (with etcd.tls.cert).' },
  { path: 'etcd.username', type: 'string', doc: 'etcd user name, when etcd authentication is on.' },
  { path: 'etcd.password', type: 'string', secret: true, doc: 'etcd password (with etcd.username).' },
  {
    path: 'etcd.requestTimeout',
    type: 'duration',
    default: 5000,
    min: 100,
    max: 60000,
    doc: 'Deadline of each etcd request.',
  },
  {
    path: 'routes.enabled',
    type: 'boolean',
    default: true,
    doc: 'Install kernel routes to same-subnet peers. Set false where another system programs routes from the advertisements in etcd; trellisd then only claims, allocates and advertises.',
  },
  {
    path: 'routes.table',
    type: 'integer',
    default: 254,
    min: 1,
    max: 4294967295,
    doc: 'Kernel routing table for routes to peers (254 is "main").',
  },
  {
    path: 'routes.protocol',
    type: 'integer',
    default: 84,
    min: 5,
    max: 255,
    doc: 'rtm_protocol stamped on every route Trellis installs; only routes with it are ever changed or removed. 84 is unreserved in iproute2 and unused by common routing daemons.',
  },
  {
    path: 'routes.resyncInterval',
    type: 'duration',
    default: 30000,
    min: 1000,
    max: 3600000,
    doc: 'Period of the full reconcile pass that repairs any drift between etcd and the kernel.',
  },
  {
    path: 'routes.ownBlocks',
    type: 'string',
    default: 'unreachable',
    doc: "Route for this node's own blocks, so that traffic for unassigned pod addresses does not leave by the default route: unreachable (ICMP error to the sender), blackhole (silent drop) or none.",
  },
  {
    path: 'routes.massWithdrawGrace',
    type: 'duration',
    default: 20000,
    min: 0,
    max: 300000,
    doc: "When at least half of the known advertisements (and two or more) vanish within 300 ms (every lease expiring at once after an etcd pause: an etcd-side event, not nodes dying), peers keep those routes up to this long from the first withdrawal while the nodes re-register; a node that advertises again changes no route. A single withdrawal takes effect after 300 ms. 0 turns damping off (docs/reliability.md).",
  },
  {
    path: 'ipam.socket',
    type: 'string',
    default: '/run/trellis/trellisd.sock',
    doc: 'Unix socket of the local IPAM API used by the trellis CNI plugin (created mode 0600); empty disables it.',
  },
  {
    path: 'ipam.addressRest',
    type: 'duration',
    default: 30000,
    min: 0,
    max: 86400000,
    doc: 'How long a released pod address rests before it is handed out again (while other addresses are free).',
  },
  {
    path: 'ipam.etcdTimeout',
    type: 'duration',
    default: 2000,
    min: 100,
    max: 60000,
    doc: 'How long an IPAM API call (a CNI ADD or DEL) waits for etcd, once etcd has stopped confirming the node\'s lease, before it answers "try again later" (CNI code 11); while etcd still confirms the lease the call waits up to 4 times this. Keep 4 times it under the plugin\'s timeoutMs (10 s by default).',
  },
  {
    path: 'ipam.blockGrace',
    type: 'duration',
    default: 600000,
    min: 0,
    max: 604800000,
    doc: 'How long a block must stay empty before it is given back to the subnet (the node always keeps one).',
  },
  {
    path: 'gc.deadNodeAfter',
    type: 'duration',
    default: 0,
    min: 0,
    max: 31536000000,
    doc: 'Give back the blocks and pod addresses of a node whose record has been absent this long (one elected collector per cluster; see docs/lifecycle.md). 0 (the default) never collects on time alone: a node cut off from etcd may still run pods.',
  },
  {
    path: 'gc.etcdUsername',
    type: 'string',
    doc: "etcd user the node collector removes dead nodes' records as: the trellis-collector user that `trellisctl rbac apply` creates. A node that connects as its own per-node user (trellis-node-NAME) may not remove another node's records, so without this it is not a collector candidate.",
  },
  { path: 'gc.etcdPassword', type: 'string', secret: true, doc: 'Password of gc.etcdUsername.' },
  {
    path: 'http.listen',
    type: 'string',
    default: '127.0.0.1:9653',
    doc: 'Address of the HTTP endpoint (/healthz, /readyz, /metrics). Use hostIP:port when the subnet advertiser must probe this node; empty disables it.',
  },
  {
    path: 'vpc.enabled',
    type: 'boolean',
    default: false,
    doc: "Take part in the election of this subnet's VPC advertiser, which keeps the subnet's pod routes in the VPC route tables named by the topology (EC2 API), and in that of the cluster's node collector, which gives back the blocks of nodes whose instance EC2 reports terminated once their lease is gone (docs/lifecycle.md).",
  },
  {
    path: 'vpc.endpoint',
    type: 'string',
    default: '',
    doc: 'EC2 API endpoint URL; empty means the regional AWS endpoint.',
  },
  {
    path: 'vpc.region',
    type: 'string',
    default: '',
    defaultText: 'from the instance metadata',
    doc: 'AWS region of the VPC, e.g. us-east-1.',
  },
  {
    path: 'vpc.vpcId',
    type: 'string',
    default: '',
    defaultText: 'from the instance metadata',
    doc: 'Id of the VPC; needed only when a subnet names no route table (the VPC\'s main table is used).',
  },
  {
    path: 'vpc.routeLimit',
    type: 'integer',
    default: 500,
    min: 1,
    max: 1000,
    rangeHint: 'AWS allows at most 1000 routes per route table (quota L-93826ACB, default 500); see docs/vpc.md, "AWS quotas"',
    doc: 'Routes a VPC route table may hold: your account\'s "Routes per route table" quota (AWS default 500, at most 1000; docs/vpc.md tells how to read it). Every route Trellis does not own, the local route included, counts against it.',
  },
  {
    path: 'vpc.metadataEndpoint',
    type: 'string',
    default: 'http://169.254.169.254',
    doc: 'Instance metadata service (IMDSv2) base URL, used for the instance id, region and VPC id when they are not configured, and for instance-role credentials.',
  },
  {
    path: 'vpc.disableSourceDestCheck',
    type: 'boolean',
    default: true,
    doc: "Turn off the source/destination check of this node's instance at start, so it can forward pod traffic for its subnet.",
  },
  {
    path: 'vpc.verifyInterval',
    type: 'duration',
    default: 30000,
    min: 1000,
    max: 3600000,
    doc: 'Period of the verification pass that reads the route tables and repairs drift; other passes run on etcd and health changes.',
  },
  {
    path: 'vpc.probeInterval',
    type: 'duration',
    default: 1000,
    min: 100,
    max: 60000,
    doc: "How often the advertiser probes each forwarder of its subnet (TCP connect to the node's HTTP endpoint).",
  },
  {
    path: 'vpc.probeMisses',
    type: 'integer',
    default: 2,
    min: 1,
    max: 100,
    doc: 'Consecutive failed probes after which a forwarder is failed and its entries move to healthy hosts.',
  },
  {
    path: 'vpc.recoverAfter',
    type: 'duration',
    default: 10000,
    min: 0,
    max: 3600000,
    doc: 'How long a failed forwarder must answer every probe before it may carry entries again (hysteresis against flapping).',
  },
  {
    path: 'vpc.unreachableAfter',
    type: 'duration',
    default: 15000,
    min: 1000,
    max: 3600000,
    doc: "How long the subnet's VPC advertiser may go without any answer from EC2 (its calls time out or cannot connect; a throttled answer is an answer) before it resigns, so that another node of the subnet takes over; it is no candidate again until EC2 answers it.",
  },
  {
    path: 'vpc.writeBurst',
    type: 'integer',
    default: 50,
    min: 1,
    max: 10000,
    doc: "Client-side token bucket of the mutating EC2 calls (CreateRoute, ReplaceRoute, DeleteRoute, ModifyInstanceAttribute): most calls in a burst. EC2's own bucket for them is 50 per account and region, shared by every subnet's advertiser and every other tool.",
  },
  {
    path: 'vpc.writesPerSecond',
    type: 'integer',
    default: 5,
    min: 1,
    max: 1000,
    doc: 'Tokens returned per second to the mutating bucket (EC2 refills its own at 5 per second).',
  },
  {
    path: 'vpc.readBurst',
    type: 'integer',
    default: 100,
    min: 1,
    max: 10000,
    doc: 'Client-side token bucket of DescribeRouteTables and DescribeInstances: most calls in a burst (EC2: 100).',
  },
  {
    path: 'vpc.readsPerSecond',
    type: 'integer',
    default: 20,
    min: 1,
    max: 1000,
    doc: 'Tokens returned per second to the describe bucket (EC2: 20).',
  },
  {
    path: 'egress.masquerade',
    type: 'boolean',
    defaultText: 'on when vpc.enabled and the pod network lies outside the VPC CIDR(s); off otherwise',
    doc: "Translate the source of pod traffic leaving for destinations outside the pod network and egress.nonMasqueradeCidrs to hostIP (SNAT, in nftables table `ip trellis`, which Trellis alone manages), so that it can leave through an internet or NAT gateway and find its way back.",
  },
  {
    path: 'egress.nonMasqueradeCidrs',
    type: 'list',
    defaultText: 'the VPC CIDR(s) from the instance metadata when vpc.enabled; none otherwise',
    doc: 'IPv4 destinations that pod traffic reaches untranslated besides the pod network (comma-separated in flags and environment).',
  },
  {
    path: 'bgp.enabled',
    type: 'boolean',
    default: false,
    doc: 'Announce the pod network to BGP peers (routers, AWS VPC Route Server) through a GoBGP speaker that trellisd starts and drives (docs/bgp.md).',
  },
  {
    path: 'bgp.mode',
    type: 'string',
    default: 'exporter',
    doc: "exporter: one elected node per subnet announces the subnet's planned prefixes; tor: every node announces its own blocks to its own peers (top-of-rack routers).",
  },
  { path: 'bgp.asn', type: 'integer', min: 1, max: 4294967295, doc: 'Our autonomous system number (required with bgp.enabled).' },
  { path: 'bgp.routerId', type: 'string', defaultText: 'hostIP', doc: 'BGP router id (an IPv4 address).' },
  {
    path: 'bgp.peers',
    type: 'list',
    default: [],
    doc: 'BGP peers, each "ADDRESS asn=N [maxPrefixes=N] [holdTime=9s] [multihop=TTL] [password=SECRET] [multipath=N]"; maxPrefixes (default 100) is the most prefixes the whole cluster announces to it (each peer has its own plan); multipath (default 1) the most next hops per prefix, sent with BGP ADD-PATH when above 1.',
  },
  { path: 'bgp.communities', type: 'list', default: [], doc: 'Communities attached to every announcement, as ASN:VALUE (e.g. 65000:100).' },
  { path: 'bgp.gobgpd', type: 'string', default: '/usr/bin/gobgpd', doc: 'Path of the gobgpd executable that trellisd starts.' },
  { path: 'bgp.apiListen', type: 'string', default: '127.0.0.1:50051', doc: "Address of gobgpd's gRPC API (loopback); a gobgpd already answering there is reused, so a trellisd restart does not drop sessions." },
  { path: 'bgp.listenPort', type: 'integer', default: 179, min: 1, max: 65535, doc: 'TCP port gobgpd accepts BGP sessions on.' },
  {
    path: 'bgp.restartTime',
    type: 'duration',
    default: 120000,
    min: 1000,
    max: 4095000,
    doc: 'Graceful restart time offered to peers: how long they keep our routes while the speaker restarts. Whole seconds.',
  },
  {
    path: 'cni.install',
    type: 'boolean',
    default: false,
    doc: 'Once ready, install the trellis CNI plugin into cni.binDir and its configuration list into cni.confDir (on Kubernetes nodes; plain hosts install them by hand). `trellisd --withdraw` removes the configuration list.',
  },
  { path: 'cni.binDir', type: 'string', default: '/opt/cni/bin', doc: 'Directory of CNI plugin executables where cni.install puts the trellis plugin.' },
  { path: 'cni.confDir', type: 'string', default: '/etc/cni/net.d', doc: 'Directory of CNI network configurations where cni.install writes the configuration list.' },
  {
    path: 'cni.confName',
    type: 'string',
    default: '10-trellis.conflist',
    doc: 'File name of the configuration list; runtimes use the first file in name order, so keep it sorting before any other network\'s.',
  },
  {
    path: 'cni.mtu',
    type: 'integer',
    defaultText: "the MTU of `interface`",
    min: 68,
    max: 65535,
    doc: 'MTU of the pod veth pairs written into the configuration list.',
  },
  {
    path: 'cni.replaceExisting',
    type: 'boolean',
    default: false,
    doc: 'Let cni.install overwrite a plugin executable or configuration list of the same name that another network installed (otherwise it refuses and says so).',
  },
  {
    path: 'log.level',
    type: 'string',
    default: 'info',
    doc: 'Log level: fatal, error, warn, info, debug or trace. Logs are JSON lines on stdout.',
  },
];

/** "etcd.tls.ca" → "etcd-tls-ca"; "hostIP" → "host-ip". */
export function flagName(path: string): string {
  return path
    .split('.')
    .map((part) => part.replace(/([a-z0-9])([A-Z]+)/g, '$1-$2').toLowerCase())
    .join('-');
}

/** "etcd.tls.ca" → "TRELLIS_ETCD_TLS_CA". */
export function envName(path: string): string {
  return `TRELLIS_${flagName(path).replace(/-/g, '_').toUpperCase()}`;
}

export function formatDefault(key: ConfigKey): string {
  if (key.defaultText !== undefined) return key.defaultText;
  if (key.default === undefined) return key.required === true ? 'none, required' : 'none';
  if (key.type === 'duration') return formatDuration(key.default as number);
  if (Array.isArray(key.default)) return key.default.join(',');
  return key.default === '' ? '""' : String(key.default);
}

export function formatDuration(ms: number): string {
  if (ms % 60000 === 0 && ms >= 60000) return `${ms / 60000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
