#!/usr/bin/env node
// trellisctl executable: runs main() with the process's arguments and IO and
// sets the exit code. Everything else lives in main.ts and the command files.

import { main } from './main.js';

// A reader that goes away (`trellisctl … | head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2));
