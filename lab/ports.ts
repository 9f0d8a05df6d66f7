// Free TCP ports on 127.0.0.1 for throwaway servers. The kernel picks a port
// (bind to port 0, read it, close); the port is then reserved for the rest of
// this process with a lock file naming our PID, so concurrent test processes
// never get the same port — even while a server that owns it is stopped for a
// while and restarted on it. Lock files of dead processes are taken over.

import { mkdirSync, openSync, closeSync, readFileSync, readdirSync, rmdirSync, rmSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerCleanup } from './cleanup.js';
import { isAlive } from './pids.js';

const lockDir = join(tmpdir(), 'trellis-test-ports');
const reserved = new Set<number>();
let unregister: (() => void) | undefined;

/** A TCP port free on 127.0.0.1, distinct from every other port handed out by this helper. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await kernelPort();
    if (reserve(port)) return port;
  }
  throw new Error('freePort: no reservable port after 50 attempts');
}

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  return ports;
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('freePort: server has no port'));
      });
    });
  });
}

function reserve(port: number): boolean {
  if (reserved.has(port)) return false;
  const file = join(lockDir, String(port));
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      mkdirSync(lockDir, { recursive: true });
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      reserved.add(port);
      unregister ??= registerCleanup(releaseAll);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // the directory was removed by a process leaving: make it again
      if (code !== 'EEXIST') throw err;
      const owner = Number(readOwner(file));
      if (owner > 0 && isAlive(owner)) return false;
      // Stale (owner dead, or the file is half-written and empty): take it over.
      if (owner > 0) rmSync(file, { force: true });
      else return false;
    }
  }
  return false;
}

function readOwner(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

function releaseAll(): void {
  for (const port of reserved) {
    const file = join(lockDir, String(port));
    if (readOwner(file) === String(process.pid)) rmSync(file, { force: true });
  }
  reserved.clear();
  unregister = undefined;
  try {
    rmdirSync(lockDir); // the last process out removes the shared directory
  } catch {
    // still in use by another process, or already gone
  }
}

/** Removes port lock files of dead processes (and the directory once empty); returns how many went. */
export function sweepStalePortLocks(): number {
  let entries: string[];
  try {
    entries = readdirSync(lockDir);
  } catch {
    return 0;
  }
  let gone = 0;
  for (const entry of entries) {
    const owner = Number(readOwner(join(lockDir, entry)));
    if (owner > 0 && owner !== process.pid && !isAlive(owner)) {
      rmSync(join(lockDir, entry), { force: true });
      gone++;
    }
  }
  try {
    rmdirSync(lockDir);
  } catch {
    // still in use by a live process
  }
  return gone;
}
