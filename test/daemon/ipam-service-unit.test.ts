// The IPAM API in process: a real unix socket in a temporary directory, the
// real allocator over the in-memory block store, a fake host. No etcd, no root.

import { BrokenCircuitError } from 'cockatiel';
import t from 'tap';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { contains, parseAddress, parsePrefix } from '../../src/core/cidr.js';
import { Ipam } from '../../src/core/ipam.js';
import { MemoryIpamStore } from '../../src/core/memory-store.js';
import type { Subnet, Topology } from '../../src/core/topology.js';
import { IpamService, type IpamHost } from '../../daemon/ipam-service.js';
import { callIpamSocket } from '../../lab/ipam-socket.js';

const P = parsePrefix;
const log = pino({ level: 'silent' });
const subnet: Subnet = { id: 'subnet-a', zone: 'z1', cidr: P('198.18.0.0/24'), podPrefix: P('100.64.0.0/26'), podPrefixExplicit: true, routeTable: undefined };
const topology: Topology = { network: P('100.64.0.0/16'), blockSize: 29, nodeHomeSize: 26, subnetSize: 24, zones: [{ name: 'z1', subnets: [subnet] }] };

const call = callIpamSocket;

type Teardown = { teardown(fn: () => void): void };

function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-ipam-api-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(t: Teardown) {
  const dir = tempDir(t);
  const socket = join(dir, 'run', 'trellisd.sock');
  const advertised: string[] = [];
  let reason: string | undefined = 'syncing the cluster view from etcd';
  const etcd: { trouble?: string; advertise?: () => Promise<void> } = {};
  const store = new MemoryIpamStore();
  const ipam = new Ipam({ topology, subnet, node: 'n1', store, claims: store, clock: () => 1_000_000, addressRestMs: 0 });
  const host: IpamHost = {
    ipam, nodeName: 'n1', subnetId: 'subnet-a', routeProtocol: 201, routeTable: 254,
    notReadyReason: () => reason,
    etcdTrouble: () => etcd.trouble,
    etcdTimeoutMs: 300,
    ensureAdvertised: async (block) => {
      await etcd.advertise?.();
      advertised.push(block);
    },
  };
  const service = new IpamService(host, log);
  await service.listen(socket);
  t.teardown(() => service.close());
  return { socket, advertised, ipam, service, etcd, ready: () => void (reason = undefined) };
}

t.test('the socket is private; calls fail as unavailable until the host is ready', async (t) => {
  const s = await serve(t);
  t.equal(statSync(s.socket).mode & 0o777, 0o600);
  const early = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'c1', ifName: 'eth0' });
  t.equal(early.status, 503);
  t.equal(early.body.code, 'E_UNAVAILABLE');
  t.match(early.body.message, /not ready: syncing the cluster view/);
  const status = await call(s.socket, 'GET', '/v1/status');
  t.same(status.body.ready ?? false, false);
  t.equal(status.body.reason, 'syncing the cluster view from etcd');
  t.same(s.advertised, []);
});

t.test('allocate: an address in an advertised block, idempotent; release and status', async (t) => {
  const s = await serve(t);
  s.ready();
  const a = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'c1', ifName: 'eth0', podName: 'web-1', network: 'net' });
  t.equal(a.status, 200);
  const block = a.body.block as string;
  t.ok(contains(P(block), parseAddress(a.body.address as string)), 'the address is in its block');
  t.same(s.advertised, [block], 'the block was advertised before the reply');
  t.equal(a.body.routeProtocol, 201);
  t.equal(a.body.routeTable, 254);
  const again = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'c1', ifName: 'eth0' });
  t.equal(again.body.address, a.body.address, 'the same address for the same attachment');
  const status = await call(s.socket, 'GET', '/v1/status');
  t.equal(status.body.ready, true);
  t.same(status.body.blocks, [block]);
  t.equal(status.body.node, 'n1');
  t.equal(status.body.subnet, 'subnet-a');
  const list = await call(s.socket, 'GET', '/v1/allocations');
  t.same((list.body.allocations as Array<Record<string, string>>).map((e) => [e.address, e.containerId, e.podName, e.network]), [[a.body.address, 'c1', 'web-1', 'net']]);
  const rel = await call(s.socket, 'POST', '/v1/release', { containerId: 'c1', ifName: 'eth0' });
  t.equal(rel.body.address, a.body.address);
  const none = await call(s.socket, 'POST', '/v1/release', { containerId: 'c1', ifName: 'eth0' });
  t.equal(none.status, 200);
  t.equal(none.body.address ?? '', '', 'releasing an unknown attachment succeeds with no address');
});

t.test('gc releases what is not a valid attachment of the network, and nothing else', async (t) => {
  const s = await serve(t);
  s.ready();
  const keep = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'keep', ifName: 'eth0', network: 'net' });
  const drop = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'drop', ifName: 'eth0', network: 'net' });
  const other = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'other', ifName: 'eth0', network: 'net2' });
  const gc = await call(s.socket, 'POST', '/v1/gc', { network: 'net', validAttachments: [{ containerId: 'keep', ifName: 'eth0' }] });
  t.same(gc.body.released, [drop.body.address]);
  const left = (await s.ipam.listAllocations()).map((e) => e.address).sort();
  t.same(left, [keep.body.address, other.body.address].sort());
});

t.test('bad calls are answered with the error taxonomy', async (t) => {
  const s = await serve(t);
  s.ready();
  const missing = await call(s.socket, 'POST', '/v1/allocate', { ifName: 'eth0' });
  t.equal(missing.status, 400);
  t.equal(missing.body.code, 'E_CONFIG');
  t.match(missing.body.message, /containerId is required/);
  const garbled = await call(s.socket, 'POST', '/v1/release', '{not json');
  t.equal(garbled.status, 400);
  const unknown = await call(s.socket, 'GET', '/v1/nothing');
  t.equal(unknown.status, 404);
  t.equal(unknown.body.code, 'E_NOT_FOUND');
});

t.test('a socket someone serves, or a file that is not a socket, is refused', async (t) => {
  const s = await serve(t);
  const second = new IpamService({ ipam: undefined, nodeName: 'n1', subnetId: undefined, routeProtocol: 201, routeTable: 254, notReadyReason: () => 'x', etcdTrouble: () => undefined, etcdTimeoutMs: 1000, ensureAdvertised: async () => undefined }, log);
  await t.rejects(second.listen(s.socket), { code: 'E_CONFIG', message: /another process is serving/ });
  const dir = tempDir(t);
  const plain = join(dir, 'plain.sock');
  writeFileSync(plain, 'x');
  await t.rejects(second.listen(plain), { code: 'E_CONFIG', message: /exists and is not a socket/ });
});

t.test('etcd in trouble: calls are refused as unavailable at once, or once the etcd timeout passed', async (t) => {
  const s = await serve(t);
  s.ready();
  s.etcd.trouble = 'etcd lease lost (no keepalive confirmed for 3 s)';
  const lost = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'c1', ifName: 'eth0' });
  t.equal(lost.status, 503);
  t.same(lost.body, { code: 'E_UNAVAILABLE', message: 'etcd lease lost (no keepalive confirmed for 3 s): try again later' });
  const del = await call(s.socket, 'POST', '/v1/release', { containerId: 'c1', ifName: 'eth0' });
  t.equal(del.body.code, 'E_UNAVAILABLE', 'release too');
  s.etcd.trouble = undefined;

  let release: () => void = () => undefined;
  s.etcd.advertise = () => new Promise<void>((resolve) => (release = resolve));
  const slow = call(s.socket, 'POST', '/v1/allocate', { containerId: 'c2', ifName: 'eth0' });
  setTimeout(() => (s.etcd.trouble = 'etcd has not confirmed the lease for 1 s'), 500);
  const stuck = await slow;
  s.etcd.trouble = undefined;
  t.equal(stuck.status, 503, 'an allocation etcd does not finish while the lease goes unconfirmed');
  t.equal(stuck.body.code, 'E_UNAVAILABLE');
  t.match(stuck.body.message, /^etcd did not answer an allocation within \d+ ms \(etcd has not confirmed the lease for 1 s\): try again later$/);
  release();

  s.etcd.advertise = () => new Promise<void>((resolve) => setTimeout(resolve, 600));
  const busy = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'c4', ifName: 'eth0' });
  t.equal(busy.status, 200, 'a slow etcd that still confirms the lease is waited for past etcdTimeout');
  s.etcd.advertise = () => new Promise<void>(() => undefined);
  const never = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'c5', ifName: 'eth0' });
  t.equal(never.status, 503, 'but not past 4 × etcdTimeout');
  t.match(never.body.message, /\(etcd is slow\): try again later$/);
  s.etcd.advertise = undefined;
  const retried = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'c2', ifName: 'eth0' });
  t.equal(retried.status, 200, 'the retry finds the allocation made in the background');

  s.etcd.advertise = async () => {
    throw new BrokenCircuitError();
  };
  const broken = await call(s.socket, 'POST', '/v1/allocate', { containerId: 'c3', ifName: 'eth0' });
  t.equal(broken.status, 503, "the etcd client's open circuit breaker");
  t.equal(broken.body.code, 'E_UNAVAILABLE');
  t.match(broken.body.message, /^etcd is unreachable: /);
});
