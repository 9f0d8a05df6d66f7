#!/usr/bin/env node
// trellisctl executable: runs main() with the process's arguments and IO and
// sets the exit code. Everything else lives in main.ts and the command files.

import { main } from './main.js';

// A reader that goes away (`trellisctl … | head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

// grpc-js passes an endpoint's host as the TLS ServerName even when it is an IP
// address (https://127.0.0.1:2379), and Node then prints a DEP0123 deprecation
// warning on every TLS run. It concerns the library, not the user's settings:
// drop that one warning, leave every other one to Node.
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
  const options = rest[0];
  const code = typeof options === 'object' && options !== null ? (options as { code?: unknown }).code : rest[1];
  if (code !== 'DEP0123') emitWarning(warning, ...rest);
}) as typeof process.emitWarning;

process.exitCode = await main(process.argv.slice(2));
