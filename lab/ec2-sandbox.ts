// An EC2 sandbox for tests and benches: moto, the lab's EC2 proxy in front of
// it, a setup client straight to moto (never throttled, never counted), a
// client through the proxy (one attempt per call, so the proxy sees every
// try), and a VPC in 198.18.0.0/16 with one subnet. With a `t`, the clients
// are destroyed at teardown (moto and the proxy register their own).

import { CreateSubnetCommand, CreateVpcCommand, EC2Client } from '@aws-sdk/client-ec2';
import { onTeardown, type Teardown } from './cleanup.js';
import { startEc2Proxy, type Ec2Proxy } from './ec2-proxy.js';
import { startMoto, type MotoServer } from './moto.js';

export interface Ec2Sandbox {
  readonly moto: MotoServer;
  readonly proxy: Ec2Proxy;
  /** Straight to moto. */
  readonly setup: EC2Client;
  /** Through the proxy. */
  readonly client: EC2Client;
  readonly vpcId: string;
  readonly subnetId: string;
}

export async function startEc2Sandbox(t: Teardown | undefined, subnetCidr = '198.18.1.0/24'): Promise<Ec2Sandbox> {
  const moto = await startMoto(t);
  const setup = new EC2Client(moto.clientConfig());
  onTeardown(t, () => setup.destroy());
  const proxy = await startEc2Proxy(t, moto.localEndpoint);
  // Fake credentials given explicitly: the SDK's default chain would ask the instance metadata address.
  const client = new EC2Client({ ...moto.clientConfig(), endpoint: proxy.endpoint, maxAttempts: 1 });
  onTeardown(t, () => client.destroy());
  const vpcId = (await setup.send(new CreateVpcCommand({ CidrBlock: '198.18.0.0/16' }))).Vpc?.VpcId as string;
  const subnetId = (await setup.send(new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: subnetCidr }))).Subnet?.SubnetId as string;
  return { moto, proxy, setup, client, vpcId, subnetId };
}
