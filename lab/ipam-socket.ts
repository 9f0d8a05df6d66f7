// A raw HTTP call to trellisd's local IPAM API over its unix socket, for tests
// that check what the API answers to good and bad requests (the CNI plugin's
// own client is cni-plugin/trellisd-client.ts). A string body is sent as is.

import { request } from 'node:http';

export interface IpamReply {
  status: number;
  body: Record<string, unknown>;
}

export function callIpamSocket(socket: string, method: string, path: string, body?: unknown): Promise<IpamReply> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || '{}') as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
  });
}
