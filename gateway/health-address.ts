import { cidrContains, nthAddress, parseCidr, parseIp } from '../core/index.ts';

/**
 * `--health-check-ip auto`: the address on this node that remote gateways probe through the
 * cable. It must lie inside this cluster's pod CIDRs (receivers refuse any other) and be
 * reachable only through the cable from a remote cluster. Pure.
 *
 * - An address of a non-loopback interface inside the pod CIDRs (a CNI bridge such as
 *   `cni0`/`cbr0`, Cilium's `cilium_host`): used as it is, nothing is added.
 * - Else (CNIs that route each pod's /32 with proxy ARP, like Calico or the sandbox): the
 *   first host address of this node's pod CIDR (`Node.spec.podCIDR`), which the gateway puts
 *   on `lo` as a /32; IPAM plugins that follow the node's pod CIDR keep that address for the
 *   node's gateway and never give it to a pod.
 * - Neither: none (`''`, health probes off), with the reason.
 */
export interface HealthAddressChoice {
  readonly address: string;
  /** True when the gateway must put `address`/32 on `lo` itself. */
  readonly onLoopback: boolean;
  readonly reason: string;
}

export interface LocalAddress { readonly ifname: string; readonly address: string }

export function pickHealthAddress(local: readonly LocalAddress[], podCidrs: readonly string[], nodePodCidr: string | undefined): HealthAddressChoice {
  const pods = podCidrs.map(parseCidr);
  const inPods = (address: string): boolean => pods.some((c) => cidrContains(c, address));
  const onInterface = local
    .filter((a) => a.ifname !== 'lo' && isIpv4(a.address) && inPods(a.address))
    .sort((a, b) => a.ifname.localeCompare(b.ifname) || a.address.localeCompare(b.address))[0];
  if (onInterface !== undefined) return { address: onInterface.address, onLoopback: false, reason: `${onInterface.ifname}'s address inside the pod CIDRs` };
  if (nodePodCidr !== undefined && nodePodCidr !== '') {
    const c = parseCidr(nodePodCidr);
    if (c.family === 4 && c.prefix <= 30) {
      const first = nthAddress(c, 1);
      if (inPods(first)) return { address: first, onLoopback: true, reason: `the first address of this node's pod CIDR ${nodePodCidr}, on lo` };
      return { address: '', onLoopback: false, reason: `this node's pod CIDR ${nodePodCidr} is outside --pod-cidrs` };
    }
  }
  return { address: '', onLoopback: false, reason: 'no interface address inside the pod CIDRs and no IPv4 pod CIDR of /30 or larger on this node' };
}


function isIpv4(address: string): boolean {
  try {
    return parseIp(address).family === 4;
  } catch {
    return false;
  }
}
