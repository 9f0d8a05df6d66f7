#!/usr/bin/env node
// The `trellis` CNI plugin (CNI spec 1.1.0; configurations 0.4.0, 1.0.0 and
// 1.1.0): reads the CNI_* environment and the network configuration on stdin,
// runs the command, prints the result or a CNI error on stdout.
//
// Invariants:
//  * Loads only what the command needs: this module and ./cni.js always,
//    the command's module (and through it node:net / node:child_process)
//    only for that command. Never the daemon, etcd, pino or protobuf code.
//    `npm run build` bundles it into dist/cni/trellis.cjs (esbuild, CommonJS:
//    no ES module loader at start-up); the dynamic imports below become lazy
//    initialisers there, so the bundle keeps this property.
//  * Exit 0 with the result (ADD), the version info (VERSION) or nothing;
//    otherwise exit 1 with `{"cniVersion","code","msg","details"}` on stdout
//    and never a stack trace, whatever went wrong.

import { readFileSync, writeSync } from 'node:fs';
import { Code, CniError, SPEC_VERSION, SUPPORTED_VERSIONS, formatError, parseConf, readEnv } from './cni.js';

/** cniVersion of the configuration, once known: errors are printed in it. */
let version = '';

function print(text: string): void {
  writeSync(1, `${text}\n`);
}

/** cniVersion of a configuration that failed to parse, for the error's own cniVersion. */
function peekVersion(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' ? v : '';
  } catch {
    return '';
  }
}

async function run(): Promise<string | undefined> {
  const env = readEnv(process.env);
  if (env.command === 'VERSION') return JSON.stringify({ cniVersion: SPEC_VERSION, supportedVersions: SUPPORTED_VERSIONS });
  let stdin: string;
  try {
    stdin = readFileSync(0, 'utf8');
  } catch (err) {
    throw new CniError(Code.IoFailure, `error reading network config from stdin: ${(err as Error).message}`);
  }
  version = peekVersion(stdin);
  const conf = parseConf(stdin, env.command);
  const ipam = conf.mode === 'ipam';
  switch (env.command) {
    case 'ADD':
      return JSON.stringify(ipam ? await (await import('./ipam-mode.js')).ipamAdd(env, conf) : await (await import('./attach.js')).add(env, conf));
    case 'DEL':
      await (ipam ? (await import('./ipam-mode.js')).ipamDel(env, conf) : (await import('./attach.js')).del(env, conf));
      return undefined;
    case 'CHECK':
      await (await import('./check.js')).check(env, conf);
      return undefined;
    case 'GC':
      await (await import('./upkeep.js')).gc(conf);
      return undefined;
    case 'STATUS':
      await (await import('./upkeep.js')).status(conf);
      return undefined;
  }
}

function fail(err: unknown): never {
  const e = err instanceof CniError ? err : new CniError(Code.Internal, `internal error: ${err instanceof Error ? err.message : String(err)}`);
  print(formatError(e, version));
  process.exit(1);
}

process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

run().then((out) => {
  if (out !== undefined) print(out);
  process.exit(0);
}, fail);
