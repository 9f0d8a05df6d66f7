// The nftables adapter: runs `nft` scripts (one `nft -f -` call each, which
// the kernel applies as one transaction: all of it or nothing) and lists a
// table. Callers build the scripts (src/core/egress.ts); this file only runs
// them, in the network namespace of the process.
//
// Invariant: nothing here builds rules or names a table on its own; the
// script given is the whole change.

import { spawn } from 'node:child_process';
import { ErrorCode, TrellisError } from '../errors.js';

export interface NftOptions {
  /** The nft executable (default `nft` on PATH). */
  readonly nft?: string;
}

function run(args: readonly string[], input: string | undefined, options: NftOptions): Promise<{ code: number | null; stdout: string; stderr: string; missing: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(options.nft ?? 'nft', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', (err: NodeJS.ErrnoException) => resolve({ code: null, stdout, stderr: err.message, missing: err.code === 'ENOENT' }));
    child.once('close', (code) => resolve({ code, stdout, stderr, missing: false }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/** True when the nft executable cannot be found. */
export function isNftMissing(err: unknown): boolean {
  return err instanceof TrellisError && err.details?.missing === true;
}

/** Applies `script` with `nft -f -` (one transaction); E_KERNEL with nft's message on failure. */
export async function applyNftScript(script: string, options: NftOptions = {}): Promise<void> {
  const r = await run(['-f', '-'], script, options);
  if (r.code === 0) return;
  const why = r.missing ? `${options.nft ?? 'nft'} not found (install nftables)` : r.stderr.trim() || `exit ${r.code}`;
  throw new TrellisError(ErrorCode.Kernel, `nft -f failed: ${why}`, { details: { missing: r.missing } });
}

/** `nft -j list table <family> <name>` parsed, or undefined when there is no such table. */
export async function listNftTable(family: string, name: string, options: NftOptions = {}): Promise<unknown[] | undefined> {
  const r = await run(['-j', 'list', 'table', family, name], undefined, options);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return undefined;
    const why = r.missing ? `${options.nft ?? 'nft'} not found (install nftables)` : r.stderr.trim() || `exit ${r.code}`;
    throw new TrellisError(ErrorCode.Kernel, `nft list table ${family} ${name} failed: ${why}`, { details: { missing: r.missing } });
  }
  return (JSON.parse(r.stdout) as { nftables?: unknown[] }).nftables ?? [];
}
