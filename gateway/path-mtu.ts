import { nthAddress, parseCidr, type CommandRunner } from '../core/index.ts';

/**
 * The path MTU for inner packets through a cable, as the OS routes them: the MTU of the
 * route to the remote CIDR's first address (its own `mtu` when set, else its device's).
 * When that route leaves by the underlay device itself (policy-based IPsec on kernel
 * XFRM), the driver's encapsulation overhead is subtracted. The route agents take this
 * from the Gateway status, so every node sends "fragmentation needed" for packets the
 * cable cannot carry instead of losing them. Undefined when the OS has no route yet.
 */
export const DRIVER_OVERHEAD: Readonly<Record<string, number>> = { wireguard: 60, vxlan: 50, ipsec: 80 };

interface RouteGet { dev?: string; metrics?: { mtu?: number }[] }
interface LinkShow { mtu?: number; addr_info?: { local?: string }[] }

export async function pathMtu(runner: CommandRunner, remoteCidr: string, underlayIp: string, driver: string): Promise<number | undefined> {
  let target: string;
  try {
    target = nthAddress(parseCidr(remoteCidr), 1);
  } catch {
    return undefined;
  }
  const r = await runner.run('ip', ['-j', 'route', 'get', target], { allowFailure: true });
  if (r.code !== 0) return undefined;
  const route = (JSON.parse(r.stdout || '[]') as RouteGet[])[0];
  if (route?.dev === undefined) return undefined;
  const own = route.metrics?.find((m) => m.mtu !== undefined)?.mtu;
  const l = await runner.run('ip', ['-j', 'addr', 'show', 'dev', route.dev], { allowFailure: true });
  if (l.code !== 0) return own;
  const link = (JSON.parse(l.stdout || '[]') as LinkShow[])[0];
  const mtu = own ?? link?.mtu;
  if (mtu === undefined) return undefined;
  const viaUnderlay = link?.addr_info?.some((a) => a.local === underlayIp) === true;
  return viaUnderlay ? mtu - (DRIVER_OVERHEAD[driver] ?? 80) : mtu;
}
