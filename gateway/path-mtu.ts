import { nthAddress, parseCidr, type CommandRunner } from '../core/index.ts';

/**
 * The path MTU for inner packets through a cable, as the OS routes them: the MTU of the
 * route to the remote CIDR's first address (its own `mtu` when set, else its device's).
 * The route must go through the cable: by the driver's route device when it has one
 * (`routeDevice`), else by the underlay device itself (policy-based IPsec on kernel XFRM),
 * whose driver encapsulation overhead is subtracted. Any other route — the node's default
 * route while the cable's own route is not there yet — is no measurement: undefined, and the
 * caller measures again later (a default route's 1500 taken for the cable's MTU made every
 * node let through packets the cable could not carry). The route agents take this from the
 * Gateway status, so every node sends "fragmentation needed" for packets the cable cannot
 * carry instead of losing them. Undefined when the OS has no such route yet.
 */
export const DRIVER_OVERHEAD: Readonly<Record<string, number>> = { wireguard: 60, vxlan: 50, ipsec: 80 };

interface RouteGet { dev?: string; metrics?: { mtu?: number }[] }
interface LinkShow { mtu?: number; addr_info?: { local?: string }[] }

export interface PathMtuInput {
  readonly remoteCidr: string;
  /** The gateway's underlay address (its private IP). */
  readonly underlayIp: string;
  readonly driver: string;
  /** The device the cable's routes leave by; undefined when they leave by the underlay. */
  readonly routeDevice: string | undefined;
}

export async function pathMtu(runner: CommandRunner, i: PathMtuInput): Promise<number | undefined> {
  let target: string;
  try {
    target = nthAddress(parseCidr(i.remoteCidr), 1);
  } catch {
    return undefined;
  }
  const r = await runner.run('ip', ['-j', 'route', 'get', target], { allowFailure: true });
  if (r.code !== 0) return undefined;
  const route = (JSON.parse(r.stdout || '[]') as RouteGet[])[0];
  if (route?.dev === undefined) return undefined;
  if (i.routeDevice !== undefined && route.dev !== i.routeDevice) return undefined;
  const own = route.metrics?.find((m) => m.mtu !== undefined)?.mtu;
  const l = await runner.run('ip', ['-j', 'addr', 'show', 'dev', route.dev], { allowFailure: true });
  if (l.code !== 0) return undefined;
  const link = (JSON.parse(l.stdout || '[]') as LinkShow[])[0];
  const mtu = own ?? link?.mtu;
  if (mtu === undefined) return undefined;
  if (i.routeDevice !== undefined) return mtu;
  const viaUnderlay = link?.addr_info?.some((a) => a.local === i.underlayIp) === true;
  return viaUnderlay ? mtu - (DRIVER_OVERHEAD[i.driver] ?? 80) : undefined;
}
