// Node placement: which subnet of the topology a node belongs to.
//
// A node's subnet decides where all its pod addresses come from (the subnet's
// pod prefix), so placement is strict: a node that names its subnet must have
// its host IP inside that subnet's host CIDR, and a node that names none is
// placed by its host IP alone. Anything else is an error, never a guess.

import { contains, formatAddress, formatPrefix, parseAddress, type Address } from './cidr.js';
import { ErrorCode, TrellisError } from '../errors.js';
import { findSubnet, subnetForHost, type Subnet, type Topology } from './topology.js';

export interface NodePlacement {
  /** Node name (for messages). */
  readonly name: string;
  /** The node's host (underlay) IP. */
  readonly hostIP: string | Address;
  /** Subnet id, when the node's configuration names one. */
  readonly subnet?: string | undefined;
}

/** The subnet a node belongs to, or a TrellisError saying why there is none. */
export function placeNode(topology: Topology, node: NodePlacement): Subnet {
  const details = { node: node.name, subnet: node.subnet };
  let host: Address;
  try {
    host = typeof node.hostIP === 'string' ? parseAddress(node.hostIP) : node.hostIP;
  } catch (err) {
    throw new TrellisError(ErrorCode.Config, `node ${node.name}: host IP ${JSON.stringify(node.hostIP)} is not an IP address`, {
      cause: err,
      details,
    });
  }
  const hostText = formatAddress(host);
  if (node.subnet !== undefined) {
    const subnet = findSubnet(topology, node.subnet);
    if (subnet === undefined) {
      throw new TrellisError(ErrorCode.NotFound, `node ${node.name}: subnet ${node.subnet} is not in the topology`, { details });
    }
    if (!contains(subnet.cidr, host)) {
      throw new TrellisError(
        ErrorCode.Config,
        `node ${node.name}: host IP ${hostText} is not inside subnet ${subnet.id} (${formatPrefix(subnet.cidr)})`,
        { details: { ...details, hostIP: hostText } },
      );
    }
    return subnet;
  }
  const subnet = subnetForHost(topology, host);
  if (subnet === undefined) {
    throw new TrellisError(ErrorCode.NotFound, `node ${node.name}: no subnet of the topology contains host IP ${hostText}`, {
      details: { ...details, hostIP: hostText },
    });
  }
  return subnet;
}
