// The plugin against a scripted stand-in for trellisd's IPAM API (HTTP on a
// unix socket), for the answers a healthy test daemon never gives: not ready,
// lost races, internal errors, garbage, silence, a dropped connection, an
// unusual route protocol and table. Each maps to its CNI code, and a failed
// ADD releases the address exactly when trellisd may have allocated one.

import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, needRoot } from '../../lab/netns.js';
import { cniPath, invoke, pluginVeths } from '../../lab/cni-harness.js';

const skip = needRoot();

/** A complete Status answer, as trellisd sends it (every field, defaults included). */
const STATUS = { ready: true, reason: '', node: 'n1', subnet: 'subnet-a1', blocks: ['100.96.7.0/26'], routeProtocol: 84, routeTable: 254 };

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const json = (res: ServerResponse, status: number, body: unknown): void => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
};

t.test('answers of trellisd and what the plugin makes of them', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-fake-api-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, 'trellisd.sock');
  const handlers: Record<string, Handler> = {};
  const seen: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      const route = `${req.method} ${req.url}`;
      seen.push(route);
      const h = handlers[route];
      if (h === undefined) json(res, 404, { code: 'E_NOT_FOUND', message: `no such call: ${route}` });
      else h(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });

  const lab = new Lab(t);
  const host = await lab.ns('fake-host');
  const path = cniPath(t);
  const conf = (extra: Record<string, unknown> = {}) => ({ cniVersion: '1.1.0', name: 'trellis', type: 'trellis', socket, ...extra });
  const add = async (id: string, extra: Record<string, unknown> = {}) => {
    const pod = await lab.ns();
    return invoke({ command: 'ADD', hostNs: host.name, containerId: id, netns: `/var/run/netns/${pod.name}`, path, config: conf(extra) });
  };
  handlers['POST /v1/release'] = (_req, res) => json(res, 200, { address: '' });
  const releases = () => seen.filter((s) => s === 'POST /v1/release').length;

  t.test('STATUS while trellisd is not ready', async (t) => {
    handlers['GET /v1/status'] = (_req, res) => json(res, 200, { ...STATUS, ready: false, reason: 'syncing the cluster view from etcd' });
    const out = await invoke({ command: 'STATUS', hostNs: host.name, path, config: conf() });
    t.match(out.json, { code: 50, msg: 'plugin not available: trellisd is not ready: syncing the cluster view from etcd' });
    handlers['GET /v1/status'] = (_req, res) => json(res, 200, STATUS);
    t.equal((await invoke({ command: 'STATUS', hostNs: host.name, path, config: conf() })).code, 0);
  });

  t.test('STATUS answered without a field of Status: a loud error naming it, not a default', async (t) => {
    const { routeTable: _gone, ...rest } = STATUS;
    handlers['GET /v1/status'] = (_req, res) => json(res, 200, { ...rest, routeTabel: 254 });
    const out = await invoke({ command: 'STATUS', hostNs: host.name, path, config: conf() });
    t.match(out.json, { code: 50, msg: /^plugin not available: trellisd answered GET \/v1\/status with a body that does not match the IPAM API: field "routeTable" is missing/ });
    handlers['GET /v1/status'] = (_req, res) => json(res, 200, STATUS);
  });

  const refusals: Array<[string, number, unknown, number, RegExp]> = [
    ['a lost race', 409, { code: 'E_CONFLICT', message: 'allocate: lost 16 races' }, 11, /^trellisd: allocate: lost 16 races \(E_CONFLICT\)$/],
    ['not ready', 503, { code: 'E_UNAVAILABLE', message: 'trellisd is not ready: waiting for etcd' }, 11, /not ready: waiting for etcd \(E_UNAVAILABLE\)/],
    ['an internal error', 500, { code: 'E_INTERNAL', message: 'boom' }, 106, /^trellisd: boom \(E_INTERNAL\)$/],
    ['a body that is not JSON', 200, 'garbage', 106, /^trellisd answered POST \/v1\/allocate with something that is not JSON/],
  ];
  for (const [what, status, body, code, msg] of refusals) {
    t.test(`ADD refused: ${what}`, async (t) => {
      handlers['POST /v1/allocate'] = (_req, res) => {
        if (typeof body === 'string') res.writeHead(status).end(body);
        else json(res, status, body);
      };
      const before = releases();
      const out = await add(`refused-${code}`);
      t.equal(out.code, 1);
      t.match(out.json, { code, msg });
      t.same(await pluginVeths(host.name), [], 'no veth left');
      t.equal(releases(), before, 'nothing to release: trellisd answered');
    });
  }

  t.test('ADD with no answer in time: 100, and the address is released', async (t) => {
    handlers['POST /v1/allocate'] = () => undefined; // never answers
    const before = releases();
    const out = await add('silent', { timeoutMs: 300 });
    t.match(out.json, { code: 100, msg: `trellisd did not answer POST /v1/allocate within 300 ms (socket ${socket})` });
    t.same(await pluginVeths(host.name), [], 'the veth made meanwhile is gone');
    t.equal(releases(), before + 1, 'released: trellisd may have allocated');
  });

  t.test('ADD whose connection is dropped: 100, and the address is released', async (t) => {
    handlers['POST /v1/allocate'] = (req) => req.socket.destroy();
    const before = releases();
    const out = await add('dropped');
    t.match(out.json, { code: 100, msg: /^trellisd (is not reachable at .*: connection reset|closed the connection without answering)/ });
    t.same(await pluginVeths(host.name), []);
    t.equal(releases(), before + 1);
  });

  t.test('ADD answered without the route table: 106 naming the field, no route in a guessed table, the address given back', async (t) => {
    handlers['POST /v1/allocate'] = (_req, res) => json(res, 200, { address: '100.96.7.8', prefixLength: 32, block: '100.96.7.0/26', routeProtocol: 84 });
    const before = releases();
    const out = await add('no-table');
    t.match(out.json, { code: 106, msg: /^trellisd answered POST \/v1\/allocate with a body that does not match the IPAM API: field "routeTable" is missing/ });
    t.same(await pluginVeths(host.name), [], 'no veth left');
    t.equal((await lab.exec(host, 'ip', ['route', 'show', 'table', 'main'])).trim(), '', 'no route in the main table');
    t.equal(releases(), before + 1, 'released: trellisd did allocate');
  });

  t.test('ADD answered with a mistyped field: 106 naming it', async (t) => {
    handlers['POST /v1/allocate'] = (_req, res) => json(res, 200, { address: '100.96.7.9', prefixLength: '32', block: '100.96.7.0/26', routeProtocol: 84, routeTable: 254 });
    const out = await add('typed');
    t.match(out.json, { code: 106, msg: /field "prefixLength" is not a uint32/ });
  });

  t.test('ADD uses the route protocol and table trellisd names', async (t) => {
    handlers['POST /v1/allocate'] = (_req, res) =>
      json(res, 200, { address: '100.96.7.7', prefixLength: 32, block: '100.96.7.0/26', routeProtocol: 99, routeTable: 100 });
    const out = await add('table-100');
    t.equal(out.code, 0, out.stdout);
    const veth = (out.json!.interfaces as Array<{ name: string }>)[0]!.name;
    t.match(await lab.exec(host, 'ip', ['-N', 'route', 'show', 'table', '100']), new RegExp(`^100\\.96\\.7\\.7 dev ${veth} proto 99 scope 253`));
    t.equal((await lab.exec(host, 'ip', ['route', 'show', 'table', 'main'])).trim(), '', 'nothing in the main table');
    const del = await invoke({ command: 'DEL', hostNs: host.name, containerId: 'table-100', path, config: conf() });
    t.equal(del.code, 0, del.stdout);
  });

  t.test('ADD given an IPv6 address refuses it and gives it back', async (t) => {
    handlers['POST /v1/allocate'] = (_req, res) => json(res, 200, { address: '2001:db8::5', prefixLength: 128, block: '2001:db8::/122', routeProtocol: 84, routeTable: 254 });
    const before = releases();
    const out = await add('six');
    t.match(out.json, { code: 7, msg: /IPv4 pods only/ });
    t.equal(releases(), before + 1);
    t.same(await pluginVeths(host.name), []);
  });

  t.test('DEL while trellisd cannot release: try again later', async (t) => {
    handlers['POST /v1/release'] = (_req, res) => json(res, 503, { code: 'E_UNAVAILABLE', message: 'etcd: deadline exceeded' });
    const out = await invoke({ command: 'DEL', hostNs: host.name, containerId: 'later', path, config: conf() });
    t.match(out.json, { code: 11, msg: 'trellisd: etcd: deadline exceeded (E_UNAVAILABLE)' });
    handlers['POST /v1/release'] = (_req, res) => json(res, 200, { address: '' });
    t.equal((await invoke({ command: 'DEL', hostNs: host.name, containerId: 'later', path, config: conf() })).code, 0);
  });
});
