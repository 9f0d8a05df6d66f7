// What trellisd does, under cni.install (a DaemonSet), when it cannot start
// because of a configuration error (unreadable etcd certificate files, a
// host address in no subnet of the topology, another network's CNI files):
// instead of exiting into a restart loop, it stays up, not ready, answering
// /readyz with 503 and the reason (and /healthz with 200, so the kubelet
// does not restart it for nothing), until it is stopped. No CNI
// configuration is ever installed in this state, so the node's network stays
// not ready rather than half set up.

import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type { TrellisConfig } from '../src/config/load.js';
import { describeError } from '../src/errors.js';
import { startHttpServer } from './http-server.js';
import { Metrics } from './metrics.js';

/** Serve "not ready: <reason>" until SIGTERM or SIGINT; resolves with exit code 2 then. */
export async function holdNotReady(config: TrellisConfig, log: Logger, err: unknown): Promise<number> {
  const reason = `configuration error: ${describeError(err)}`;
  let server: Server | undefined;
  if (config.http.listen !== '') {
    try {
      server = await startHttpServer(config.http.listen, new Metrics(), { notReadyReason: () => reason }, log.child({ component: 'http' }));
    } catch (e) {
      log.error({ err: describeError(e) }, 'cannot serve /readyz either');
      return 2;
    }
  }
  // Logged once /readyz answers, so whoever reads the log can ask it at once.
  log.error({ reason }, 'not starting: staying up, not ready, until the configuration is fixed');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  server?.close();
  return 2;
}
