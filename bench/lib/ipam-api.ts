// One timed call of trellisd's local IPAM API (the unix socket the CNI
// plugin uses), for benchmarks: resolves with its round-trip time in ms,
// rejects on any answer but 200.

import { request } from 'node:http';

export function timedApiCall(socket: string, path: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request({ socketPath: socket, method: 'POST', path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`${path}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
