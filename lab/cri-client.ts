// A Container Runtime Interface client for the lab, playing the kubelet's part
// for pod sandboxes: Version, RunPodSandbox, PodSandboxStatus, StopPodSandbox,
// RemovePodSandbox over containerd's unix socket, with the subset of
// runtime.v1 in lab/cri/api.proto (upstream field numbers).
//
// Invariant: one client per socket; `close()` ends its channel.

import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ROOT } from './trellis.js';

export interface PodSpec {
  name: string;
  namespace?: string;
  uid?: string;
  hostname?: string;
  labels?: Record<string, string>;
}

export interface SandboxStatus {
  id: string;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  ip: string;
  /** The sandbox's network namespace path, from the verbose runtime spec. */
  netns: string | undefined;
}

type Unary = (req: object, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void;

export class CriClient {
  private readonly client: grpc.Client & Record<string, Unary>;

  constructor(socket: string) {
    const def = protoLoader.loadSync(join(ROOT, 'lab', 'cri', 'api.proto'), { keepCase: true, longs: String, enums: String, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } } };
    this.client = new pkg.runtime.v1.RuntimeService(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Unary>;
  }

  private call<T>(method: string, req: object, timeoutMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const fn = this.client[method] as Unary | undefined;
      if (fn === undefined) throw new Error(`CRI: no method ${method}`);
      const deadline = new Date(Date.now() + timeoutMs);
      (fn as unknown as (r: object, m: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: T) => void) => void).call(
        this.client,
        req,
        new grpc.Metadata(),
        { deadline },
        (err: grpc.ServiceError | null, res: T) => (err === null ? resolve(res) : reject(new Error(`CRI ${method}: ${err.details || err.message}`))),
      );
    });
  }

  async version(): Promise<{ runtime_name: string; runtime_version: string; runtime_api_version: string }> {
    return this.call('Version', { version: 'v1' });
  }

  /** RunPodSandbox (the CNI ADD happens inside it); resolves with the sandbox id. */
  async runPodSandbox(pod: PodSpec): Promise<string> {
    const res = await this.call<{ pod_sandbox_id: string }>('RunPodSandbox', {
      config: {
        metadata: { name: pod.name, namespace: pod.namespace ?? 'default', uid: pod.uid ?? `uid-${pod.name}`, attempt: 0 },
        hostname: pod.hostname ?? pod.name,
        labels: pod.labels ?? {},
        linux: {},
      },
    });
    return res.pod_sandbox_id;
  }

  async podSandboxStatus(id: string): Promise<SandboxStatus> {
    const res = await this.call<{ status: { id: string; state: SandboxStatus['state']; network: { ip: string } | null }; info: Record<string, string> }>(
      'PodSandboxStatus',
      { pod_sandbox_id: id, verbose: true },
    );
    let netns: string | undefined;
    try {
      const info = JSON.parse(res.info.info ?? '{}') as { runtimeSpec?: { linux?: { namespaces?: Array<{ type: string; path?: string }> } } };
      netns = info.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
    } catch {
      netns = undefined;
    }
    return { id: res.status.id, state: res.status.state, ip: res.status.network?.ip ?? '', netns };
  }

  /** StopPodSandbox: the sandbox stops and its network is torn down (CNI DEL). */
  async stopPodSandbox(id: string): Promise<void> {
    await this.call('StopPodSandbox', { pod_sandbox_id: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call('RemovePodSandbox', { pod_sandbox_id: id });
  }

  close(): void {
    this.client.close();
  }
}
