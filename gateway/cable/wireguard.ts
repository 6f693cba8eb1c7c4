import { existsSync } from 'node:fs';
import {
  ErrorCodes, IsthmusError, cidrsOverlap, formatCidr, formatIp, isWireguardKey, messageOf, parseCidr, parseIp, systemClock,
  Serial, wireguardPublicKeyOf, type Clock, type CommandRunner, type Logger,
} from '../../core/index.ts';
import { uniqueSpecs, type CableDriver, type CableSpec, type CableStatus, type DriverDeps, type LocalEndpoint, type SetResult } from './driver.ts';
import { runBatch } from './batch.ts';
import { Wg, formatEndpoint, type WgPeerConfig } from './wg.ts';

/**
 * WireGuardDriver: one WireGuard device `isthmus-wg`, one peer per remote cluster.
 *
 * - Device: the kernel's (`ip link add isthmus-wg type wireguard`) when that works, else
 *   wireguard-go (userspace over TUN): the first of `options.wireguardGo` that runs —
 *   by default the build ./setup makes from the golang.zx2c4.com/wireguard module
 *   (`/usr/local/libexec/isthmus/wireguard-go`: UDP GSO/GRO, TUN offloads, 7 MiB socket
 *   buffers forced past net.core.{r,w}mem_max with CAP_NET_ADMIN, so no host-wide sysctl
 *   is changed), else Debian's `wireguard-go` on PATH. The choice is made by probing in
 *   init() and logged; `implementation` and `userspaceProgram` say which.
 * - Interface: private key from `LocalEndpoint.secrets.privateKey` (set through stdin),
 *   listen port `LocalEndpoint.port`, MTU = underlay MTU − 60 for an IPv4 underlay
 *   (20 IPv4 + 8 UDP + 32 WireGuard) or − 80 for IPv6 (40 + 8 + 32); the underlay MTU is
 *   that of the interface holding `privateIp` (1500 when none does). `options.mtu` overrides.
 * - Peer per cable: public key `backend['public-key']`, endpoint `remoteIp:remotePort`,
 *   AllowedIPs = `remoteCidrs`, PersistentKeepalive 25 when `natTraversal`; plus
 *   `ip route replace CIDR dev isthmus-wg proto static` per remote CIDR.
 * - set(): computes the desired peers and routes (pure: `planWireGuard`), reads what the
 *   device has (`wg show dump`, `ip route`), and runs only the difference — peers and
 *   routes that are new or changed first, then removals — batched: one `wg set` for all
 *   changed peers, one `ip -batch` for the new routes, one for the stale routes, one
 *   `wg set` for the stale peers (about 5 processes for 100 remotes, not 300). A failed
 *   `wg set` is retried peer by peer and a failed batch line names its route (batch.ts),
 *   so a bad remote fails only its cable. A second call with the same input runs only
 *   read commands. A peer whose endpoint WireGuard roamed (NAT) is left
 *   alone while its spec is unchanged. A NAT-traversal peer that moved to another address
 *   (its cluster's gateway failed over) gets its keepalive turned off and on, so WireGuard
 *   sends to it at once instead of within 25 s (the side behind NAT must open its mapping
 *   to the new gateway; nothing else would until the next keepalive). A refused spec (bad key, address, port, CIDR, or a
 *   CIDR overlapping another cable) is not applied, its old peer is removed, and the
 *   others are applied.
 * - connections(): connected when the latest handshake is under 3 minutes old,
 *   connecting otherwise, error for a refused or failed cable or a vanished device.
 * - init() adopts a device that answers `wg show` (a running wireguard-go included); a
 *   device that does not (its wireguard-go died) is recreated and the last `set` input
 *   re-applied; set() also recreates a device that disappeared.
 * - cleanup() deletes the device (its routes go with it; wireguard-go exits when its TUN
 *   device goes) and removes a leftover UAPI socket.
 */
export interface WireGuardDriverOptions {
  /** Device name; default "isthmus-wg". */
  readonly device?: string;
  /** MTU of the device; default underlay MTU − 60 (IPv4) / − 80 (IPv6). */
  readonly mtu?: number;
  /** "auto" (default) probes the kernel module; "userspace" always runs wireguard-go. */
  readonly implementation?: 'auto' | 'kernel' | 'userspace';
  /**
   * The wireguard-go binaries to try, best first; the first whose `--version` runs is
   * used. Default: ISTHMUS_WIREGUARD_GO (built by ./setup), then `wireguard-go` (Debian's).
   */
  readonly wireguardGo?: readonly string[];
  /** See wg.ts: private UAPI socket directory when gateways share a filesystem (sandbox, tests). */
  readonly socketDir?: string;
  /** A handshake younger than this means connected; default 180 000 ms. */
  readonly handshakeTimeoutMs?: number;
  readonly clock?: Clock;
}

export const WIREGUARD_DEVICE = 'isthmus-wg';
/** Where ./setup links the wireguard-go it builds (scripts/build-wireguard-go.sh). */
export const ISTHMUS_WIREGUARD_GO = '/usr/local/libexec/isthmus/wireguard-go';
export const DEFAULT_WIREGUARD_GO: readonly string[] = [ISTHMUS_WIREGUARD_GO, 'wireguard-go'];
export const WIREGUARD_KEEPALIVE_S = 25;

export interface WireGuardPeerPlan {
  readonly remoteCluster: string;
  readonly peer: WgPeerConfig & { readonly endpoint: { ip: string; port: number } };
  /** Normalized CIDRs (= the peer's allowed IPs). */
  readonly routes: readonly string[];
}

export interface WireGuardPlan {
  readonly peers: readonly WireGuardPeerPlan[];
  readonly refused: readonly { remoteCluster: string; reason: string }[];
}

/** Why `port` is not a UDP port, or undefined. */
export function badPort(port: unknown): string | undefined {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535 ? undefined : `port ${String(port)} is not a port number (1-65535)`;
}

/**
 * Checks the remote address, port and CIDRs shared by every driver; returns the normalized
 * CIDRs or the reason the spec is refused. CIDRs must not overlap `taken` (local and other cables').
 */
export function checkCommonSpec(spec: CableSpec, taken: readonly { cidr: string; owner: string }[]): { cidrs: string[] } | { reason: string } {
  try {
    parseIp(spec.remoteIp);
  } catch {
    return { reason: `remote address "${String(spec.remoteIp)}" is not an IP address` };
  }
  const port = badPort(spec.remotePort);
  if (port !== undefined) return { reason: `remote ${port}` };
  if (!Array.isArray(spec.remoteCidrs) || spec.remoteCidrs.length === 0) return { reason: 'the remote cluster has no CIDRs to route' };
  const cidrs: string[] = [];
  for (const c of spec.remoteCidrs) {
    let parsed;
    try {
      parsed = parseCidr(c);
    } catch (err) {
      return { reason: `remote CIDR: ${messageOf(err)}` };
    }
    const clash = taken.find((t) => cidrsOverlap(parseCidr(t.cidr), parsed));
    if (clash !== undefined) return { reason: `remote CIDR ${c} overlaps ${clash.cidr} of ${clash.owner}` };
    cidrs.push(formatCidr(parsed));
  }
  return { cidrs: [...new Set(cidrs)].sort() };
}

/** Pure: the peers a set of specs asks for, and the specs refused with the reason. */
export function planWireGuard(local: { publicKey: string; cidrs: readonly string[] }, specs: readonly CableSpec[]): WireGuardPlan {
  const taken: { cidr: string; owner: string }[] = local.cidrs.map((cidr) => ({ cidr, owner: 'this cluster' }));
  const keys = new Map<string, string>();
  const peers: WireGuardPeerPlan[] = [];
  const refused: { remoteCluster: string; reason: string }[] = [];
  for (const spec of uniqueSpecs(specs, refused)) {
    const refuse = (reason: string): void => void refused.push({ remoteCluster: spec.remoteCluster, reason });
    const key = spec.backend['public-key'];
    if (!isWireguardKey(key)) {
      refuse('the public key (backend "public-key") is not 44 characters of base64 encoding 32 bytes');
      continue;
    }
    if (key === local.publicKey) {
      refuse("the public key is this gateway's own");
      continue;
    }
    const dup = keys.get(key);
    if (dup !== undefined) {
      refuse(`the public key is also cluster ${dup}'s`);
      continue;
    }
    const common = checkCommonSpec(spec, taken);
    if ('reason' in common) {
      refuse(common.reason);
      continue;
    }
    keys.set(key, spec.remoteCluster);
    for (const cidr of common.cidrs) taken.push({ cidr, owner: `cluster ${spec.remoteCluster}` });
    peers.push({
      remoteCluster: spec.remoteCluster,
      peer: {
        publicKey: key,
        endpoint: { ip: formatIpText(spec.remoteIp), port: spec.remotePort },
        allowedIps: common.cidrs,
        ...(spec.natTraversal ? { persistentKeepalive: WIREGUARD_KEEPALIVE_S } : {}),
      },
      routes: common.cidrs,
    });
  }
  return { peers, refused };
}

/** The canonical text of an address (lowercase, shortest IPv6). */
export function formatIpText(ip: string): string {
  const p = parseIp(ip);
  return formatIp(p.family, p.value);
}

// ---- iproute2 helpers (also used by vxlan.ts) ----

export interface LinkInfo {
  readonly name: string;
  readonly mtu: number;
  readonly up: boolean;
  readonly kind: string | undefined;
  readonly address: string | undefined;
}

/** `ip -j -d link show dev NAME`, or undefined when there is no such device. */
export async function readLink(runner: CommandRunner, name: string): Promise<LinkInfo | undefined> {
  const r = await runner.run('ip', ['-j', '-d', 'link', 'show', 'dev', name], { allowFailure: true });
  if (r.code !== 0) {
    if (/does not exist|Cannot find device/.test(r.stderr)) return undefined;
    throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `ip link show dev ${name} exited ${String(r.code)}: ${r.stderr.trim()}`);
  }
  const j = (JSON.parse(r.stdout) as { ifname: string; mtu: number; flags?: string[]; address?: string; linkinfo?: { info_kind?: string } }[])[0];
  if (j === undefined) return undefined;
  return { name: j.ifname, mtu: j.mtu, up: (j.flags ?? []).includes('UP'), kind: j.linkinfo?.info_kind, address: j.address };
}

/** The address part of `ip:port` or `[ip]:port`. */
function hostOf(endpoint: string): string {
  return endpoint.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
}

/** Routes in the main table through `dev` that the kernel did not add itself, as normalized CIDRs → gateway (or ''). */
export async function readRoutes(runner: CommandRunner, dev: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [family, flag] of [[4, '-4'], [6, '-6']] as const) {
    const r = await runner.run('ip', ['-j', flag, 'route', 'show', 'table', 'main', 'dev', dev], { allowFailure: true });
    if (r.code !== 0) {
      if (/does not exist|Cannot find device/.test(r.stderr)) return out;
      throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `ip route show dev ${dev} exited ${String(r.code)}: ${r.stderr.trim()}`);
    }
    const routes = r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as { dst: string; gateway?: string; protocol?: string }[]);
    for (const route of routes) {
      if (route.protocol === 'kernel' || route.dst === 'default') continue;
      const dst = route.dst.includes('/') ? route.dst : `${route.dst}/${family === 4 ? '32' : '128'}`;
      out.set(formatCidr(parseCidr(dst)), route.gateway ?? '');
    }
  }
  return out;
}

/** What `ip route del` says when the route is already gone. */
export const NO_SUCH_ROUTE = /No such process|Cannot find device|does not exist/;

/** MTU of the interface that holds `ip` (1500 when none does). */
export async function underlayMtu(runner: CommandRunner, ip: string): Promise<number> {
  const r = await runner.run('ip', ['-j', 'addr', 'show']);
  const links = JSON.parse(r.stdout) as { mtu: number; addr_info?: { local?: string }[] }[];
  const want = formatIpText(ip);
  const link = links.find((l) => (l.addr_info ?? []).some((a) => a.local !== undefined && formatIpText(a.local) === want));
  return link?.mtu ?? 1500;
}

/** Throws NOT_ROOT for a permission failure of an `ip` change, COMMAND_FAILED otherwise. */
export async function ipChange(runner: CommandRunner, args: readonly string[]): Promise<void> {
  const r = await runner.run('ip', args, { allowFailure: true });
  if (r.code === 0) return;
  if (/Operation not permitted/.test(r.stderr)) {
    throw new IsthmusError(ErrorCodes.NOT_ROOT, `ip ${args.join(' ')}: not permitted; the gateway needs root or CAP_NET_ADMIN`);
  }
  throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `ip ${args.join(' ')} exited ${String(r.code)}: ${r.stderr.trim()}`, { context: { args: [...args], stderr: r.stderr.slice(0, 2000) } });
}

// ---- the driver ----

interface Applied {
  readonly publicKey: string;
  readonly endpoint: string;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  const sb = [...b].sort();
  return a.length === b.length && [...a].sort().every((x, i) => x === sb[i]);
}

export class WireGuardDriver implements CableDriver {
  readonly name = 'wireguard' as const;
  readonly device: string;
  readonly #runner: CommandRunner;
  readonly #log: Logger;
  readonly #wg: Wg;
  readonly #options: WireGuardDriverOptions;
  readonly #clock: Clock;
  #local: LocalEndpoint | undefined;
  #publicKey = '';
  #implementation: 'kernel' | 'userspace' | undefined;
  /** The wireguard-go binary and its version, once one was chosen. */
  #userspace: { program: string; version: string } | undefined;
  /** Every spec set() was last given, by remote cluster. */
  #specs = new Map<string, CableSpec>();
  /** Why a cable is in error (refused spec or failed OS change). */
  #failed = new Map<string, string>();
  /** Peers this instance applied successfully. */
  #applied = new Map<string, Applied>();

  constructor(deps: DriverDeps, options: WireGuardDriverOptions = {}) {
    this.#runner = deps.runner;
    this.#log = deps.logger;
    this.#options = options;
    this.device = options.device ?? WIREGUARD_DEVICE;
    this.#clock = options.clock ?? systemClock;
    this.#wg = new Wg(deps.runner, options.socketDir === undefined ? {} : { socketDir: options.socketDir });
  }

  /** "kernel" or "userspace" (wireguard-go), known after init(). */
  get implementation(): 'kernel' | 'userspace' | undefined {
    return this.#implementation;
  }

  /** The wireguard-go this driver starts (path and `--version` line), once init() needed one. */
  get userspaceProgram(): { readonly program: string; readonly version: string } | undefined {
    return this.#userspace;
  }

  routeDevice(): string {
    return this.device;
  }

  implementationInfo(): string | undefined {
    if (this.#implementation === 'kernel') return 'kernel WireGuard';
    return this.#userspace === undefined ? undefined : `${this.#userspace.version} (${this.#userspace.program})`;
  }

  /** This gateway's public key (for its Endpoint's backend "public-key"), known after init(). */
  get publicKey(): string {
    return this.#publicKey;
  }

  /** init, set and cleanup run one at a time, in call order (the engine's reconcile and a restart path may overlap). */
  readonly #serial = new Serial();

  /**
   * wg must be installed; wireguard-go too, unless the kernel's WireGuard module is loaded
   * (a module that is only loadable is not seen here: load it, or install wireguard-go).
   */
  async preflight(): Promise<void> {
    await this.#wg.version();
    const mode = this.#options.implementation ?? 'auto';
    if (mode === 'kernel' || (mode === 'auto' && existsSync('/sys/module/wireguard'))) return;
    await this.#findUserspace();
  }

  /** The first wireguard-go of options.wireguardGo that runs; MISSING_DEPENDENCY when none does. */
  async #findUserspace(): Promise<{ program: string; version: string }> {
    if (this.#userspace !== undefined) return this.#userspace;
    const tried: string[] = [];
    for (const program of this.#options.wireguardGo ?? DEFAULT_WIREGUARD_GO) {
      try {
        this.#userspace = { program, version: await this.#wg.userspaceVersion(program) };
        return this.#userspace;
      } catch (err) {
        tried.push(`${program}: ${messageOf(err)}`);
      }
    }
    throw new IsthmusError(ErrorCodes.MISSING_DEPENDENCY,
      `no wireguard-go runs and the kernel has no WireGuard module (tried ${tried.join('; ')}): run ./setup, which builds wireguard-go into ${ISTHMUS_WIREGUARD_GO} and installs Debian's (package wireguard-go), or load the wireguard module`,
      { context: { tried: (this.#options.wireguardGo ?? DEFAULT_WIREGUARD_GO).join(' ') } });
  }

  init(local: LocalEndpoint): Promise<void> {
    return this.#serial.run(() => this.#init(local));
  }

  set(desired: readonly CableSpec[]): Promise<SetResult> {
    return this.#serial.run(() => this.#set(desired));
  }

  cleanup(): Promise<void> {
    return this.#serial.run(() => this.#cleanup());
  }

  async #init(local: LocalEndpoint): Promise<void> {
    const key = local.secrets['privateKey'];
    if (!isWireguardKey(key)) {
      throw new IsthmusError(ErrorCodes.INVALID_CONFIG, 'the WireGuard private key (secret "privateKey") is missing or not 44 characters of base64 encoding 32 bytes: issue one with `isthmus certs wireguard`');
    }
    const port = badPort(local.port);
    if (port !== undefined) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `the WireGuard listen ${port}`);
    try {
      parseIp(local.privateIp);
    } catch (err) {
      throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `the gateway's private IP: ${messageOf(err)}`);
    }
    this.#local = local;
    this.#publicKey = wireguardPublicKeyOf(key);
    await this.#wg.version(); // MISSING_DEPENDENCY (wireguard-tools) before anything else
    const recreated = await this.#ensureDevice();
    if (recreated && this.#specs.size > 0) await this.#set([...this.#specs.values()]);
  }

  /** Makes the device exist, answer and carry the interface config; true when it had to be created. */
  async #ensureDevice(): Promise<boolean> {
    const local = this.#requireLocal();
    let link = await readLink(this.#runner, this.device);
    let dump = link === undefined ? undefined : await this.#wg.showDump(this.device);
    let created = false;
    if (link !== undefined && dump === undefined) {
      this.#log.warn({ device: this.device }, 'WireGuard device does not answer (its wireguard-go exited?): recreating it');
      await ipChange(this.#runner, ['link', 'del', 'dev', this.device]);
      link = undefined;
    }
    if (link === undefined) {
      this.#implementation = await this.#createDevice();
      created = true;
      link = await readLink(this.#runner, this.device);
      dump = await this.#wg.showDump(this.device);
      if (link === undefined || dump === undefined) {
        throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `the WireGuard device ${this.device} did not come up after it was created`);
      }
      this.#applied.clear();
    } else {
      this.#implementation = link.kind === 'wireguard' ? 'kernel' : 'userspace';
      this.#log.info({ device: this.device, implementation: this.#implementation }, 'adopted the existing WireGuard device');
    }
    if (dump === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, 'no WireGuard device state');
    if (dump.interface.publicKey !== this.#publicKey) await this.#wg.setPrivateKey(this.device, local.secrets['privateKey'] ?? '');
    if (dump.interface.listenPort !== local.port) await this.#wg.setListenPort(this.device, local.port);
    const mtu = this.#options.mtu ?? (await underlayMtu(this.#runner, local.privateIp)) - (parseIp(local.privateIp).family === 4 ? 60 : 80);
    if (link.mtu !== mtu) await ipChange(this.#runner, ['link', 'set', 'dev', this.device, 'mtu', String(mtu)]);
    if (!link.up) await ipChange(this.#runner, ['link', 'set', 'dev', this.device, 'up']);
    return created;
  }

  async #createDevice(): Promise<'kernel' | 'userspace'> {
    const mode = this.#options.implementation ?? 'auto';
    if (mode !== 'userspace') {
      const r = await this.#runner.run('ip', ['link', 'add', 'dev', this.device, 'type', 'wireguard'], { allowFailure: true });
      if (r.code === 0) {
        this.#log.info({ device: this.device }, 'created the kernel WireGuard device');
        return 'kernel';
      }
      if (/Operation not permitted/.test(r.stderr)) throw new IsthmusError(ErrorCodes.NOT_ROOT, `creating ${this.device} is not permitted: the gateway needs root or CAP_NET_ADMIN`);
      if (mode === 'kernel') throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `the kernel has no WireGuard (${r.stderr.trim()}): load the wireguard module or use the userspace implementation`);
    }
    const go = await this.#findUserspace();
    await this.#wg.startUserspace(this.device, go.program);
    this.#log.info({ device: this.device, program: go.program, version: go.version }, 'started wireguard-go: the kernel has no WireGuard module');
    return 'userspace';
  }

  #requireLocal(): LocalEndpoint {
    if (this.#local === undefined) throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, 'the WireGuard driver was used before init(): call init() first');
    return this.#local;
  }

  async #set(desired: readonly CableSpec[]): Promise<SetResult> {
    const local = this.#requireLocal();
    this.#specs = new Map(desired.map((s) => [s.remoteCluster, s]));
    this.#failed = new Map();
    const plan = planWireGuard({ publicKey: this.#publicKey, cidrs: local.cidrs }, desired);
    for (const r of plan.refused) {
      this.#failed.set(r.remoteCluster, r.reason);
      this.#log.warn({ remoteCluster: r.remoteCluster, reason: r.reason }, 'WireGuard cable refused');
    }
    let dump = await this.#wg.showDump(this.device);
    if (dump === undefined) {
      await this.#ensureDevice(); // the device vanished (wireguard-go died): recreate it
      dump = await this.#wg.showDump(this.device);
      if (dump === undefined) throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `the WireGuard device ${this.device} does not answer after it was recreated`);
    }
    const routes = await readRoutes(this.#runner, this.device);
    const live = new Map(dump.peers.map((p) => [p.publicKey, p]));
    const wantKeys = new Set(plan.peers.map((p) => p.peer.publicKey));
    const wantRoutes = new Set<string>();

    // adds and updates: every changed peer in one `wg set`, then every missing route in one `ip -batch`
    const changed: WireGuardPeerPlan[] = [];
    // NAT-traversal peers that moved to another address (the remote's gateway failed over)
    const moved: WireGuardPeerPlan[] = [];
    for (const p of plan.peers) {
      const endpoint = formatEndpoint(p.peer.endpoint.ip, p.peer.endpoint.port);
      const have = live.get(p.peer.publicKey);
      const applied = this.#applied.get(p.remoteCluster);
      // a roamed endpoint (NAT) is fine while the spec is the one this instance applied; on
      // adoption (nothing applied yet) a NAT-traversal peer's endpoint at the same address
      // with another port is the NAT's mapping, so it is kept too
      const endpointOk = have !== undefined && (have.endpoint === endpoint
        || (applied?.publicKey === p.peer.publicKey && applied.endpoint === endpoint)
        || (applied === undefined && p.peer.persistentKeepalive !== undefined && have.endpoint !== undefined && hostOf(have.endpoint) === hostOf(endpoint)));
      const same = have !== undefined && endpointOk && sameList(have.allowedIps, p.peer.allowedIps) && (have.persistentKeepalive ?? 0) === (p.peer.persistentKeepalive ?? 0);
      if (!same) changed.push(p);
      if (!same && have?.endpoint !== undefined && !endpointOk && p.peer.persistentKeepalive !== undefined) moved.push(p);
    }
    const fail = (remoteCluster: string, publicKey: string, err: string): void => {
      this.#failed.set(remoteCluster, err);
      this.#applied.delete(remoteCluster);
      wantKeys.delete(publicKey);
      this.#log.warn({ remoteCluster, err }, 'WireGuard cable failed');
    };
    const notSet = new Set((await this.#setPeers(changed, fail)).map((p) => p.peer.publicKey));
    await this.#handshakeNow(moved.filter((p) => !this.#failed.has(p.remoteCluster)));
    for (const p of changed) {
      if (this.#failed.has(p.remoteCluster)) continue;
      const endpoint = formatEndpoint(p.peer.endpoint.ip, p.peer.endpoint.port);
      this.#log.info({ remoteCluster: p.remoteCluster, publicKey: p.peer.publicKey, endpoint, allowedIps: p.peer.allowedIps }, live.has(p.peer.publicKey) ? 'WireGuard peer updated' : 'WireGuard peer added');
    }
    const ok = plan.peers.filter((p) => !this.#failed.has(p.remoteCluster));
    const adds = ok.flatMap((p) => p.routes.filter((cidr) => !routes.has(cidr)).map((cidr) => ({ p, args: ['route', 'replace', cidr, 'dev', this.device, 'proto', 'static'] })));
    const addFailures = await runBatch(this.#runner, 'ip', adds);
    for (const [i, reason] of addFailures) {
      const p = adds[i]?.p;
      if (p !== undefined && !this.#failed.has(p.remoteCluster)) fail(p.remoteCluster, p.peer.publicKey, reason);
    }
    const present = new Set([...routes.keys(), ...adds.filter((_, i) => !addFailures.has(i)).map((a) => a.args[2] ?? '')]);
    for (const p of plan.peers) {
      if (this.#failed.has(p.remoteCluster)) continue;
      for (const cidr of p.routes) wantRoutes.add(cidr);
      this.#applied.set(p.remoteCluster, { publicKey: p.peer.publicKey, endpoint: formatEndpoint(p.peer.endpoint.ip, p.peer.endpoint.port) });
    }
    // then deletes: stale routes in one `ip -batch`, stale peers in one `wg set`
    // (a failed cable's routes go too, those this call added included)
    const dels = [...present].filter((cidr) => !wantRoutes.has(cidr)).map((cidr) => ({ args: ['route', 'del', cidr, 'dev', this.device] }));
    for (const [i, reason] of await runBatch(this.#runner, 'ip', dels, { gone: NO_SUCH_ROUTE })) {
      this.#log.warn({ cidr: dels[i]?.args[2], err: reason }, 'could not remove a stale route');
    }
    // (a failed cable's peer goes too, one this call set included)
    const stale = [...new Set([...dump.peers.map((peer) => peer.publicKey), ...changed.map((p) => p.peer.publicKey).filter((k) => !notSet.has(k))])].filter((k) => !wantKeys.has(k));
    try {
      await this.#wg.removePeers(this.device, stale);
    } catch (err) {
      this.#log.warn({ err: messageOf(err) }, 'removing the stale WireGuard peers together failed: removing them one by one');
      for (const publicKey of stale) {
        await this.#wg.removePeer(this.device, publicKey).catch((e: unknown) => this.#log.warn({ publicKey, err: messageOf(e) }, 'could not remove a stale WireGuard peer'));
      }
    }
    for (const publicKey of stale) this.#log.info({ publicKey }, 'WireGuard peer removed');
    for (const cluster of [...this.#applied.keys()]) if (!plan.peers.some((p) => p.remoteCluster === cluster) || this.#failed.has(cluster)) this.#applied.delete(cluster);
    return { failed: [...this.#failed].map(([remoteCluster, reason]) => ({ remoteCluster, reason })) };
  }

  /**
   * All changed peers in one `wg set`; when that fails (wg parses everything before it
   * changes anything), peer by peer, so that only the failing peers' cables fail.
   * Returns the peers that could not be set.
   */
  async #setPeers(changed: readonly WireGuardPeerPlan[], fail: (remoteCluster: string, publicKey: string, err: string) => void): Promise<WireGuardPeerPlan[]> {
    if (changed.length === 0) return [];
    try {
      await this.#wg.setPeers(this.device, changed.map((p) => p.peer));
      return [];
    } catch (err) {
      if (changed.length === 1 && changed[0] !== undefined) {
        fail(changed[0].remoteCluster, changed[0].peer.publicKey, messageOf(err));
        return [changed[0]];
      }
      this.#log.warn({ peers: changed.length, err: messageOf(err) }, 'setting the WireGuard peers together failed: setting them one by one');
    }
    const notSet: WireGuardPeerPlan[] = [];
    for (const p of changed) {
      try {
        await this.#wg.setPeer(this.device, p.peer);
      } catch (err) {
        fail(p.remoteCluster, p.peer.publicKey, messageOf(err));
        notSet.push(p);
      }
    }
    return notSet;
  }

  /**
   * Makes WireGuard send to a moved NAT-traversal peer at once: turning persistent keepalive
   * off and on again sends a keepalive (and so a handshake) now. Without it the side behind NAT
   * waits up to the keepalive interval (25 s) before its NAT lets the new remote gateway in.
   */
  async #handshakeNow(moved: readonly WireGuardPeerPlan[]): Promise<void> {
    for (const p of moved) {
      try {
        await this.#wg.setPeer(this.device, { ...p.peer, persistentKeepalive: 0 });
        await this.#wg.setPeer(this.device, p.peer);
      } catch (err) {
        this.#log.warn({ remoteCluster: p.remoteCluster, err: messageOf(err) }, 'could not prompt a handshake to the moved peer; the keepalive will');
      }
    }
  }

  async connections(): Promise<readonly CableStatus[]> {
    const dump = this.#local === undefined ? undefined : await this.#wg.showDump(this.device);
    const timeout = this.#options.handshakeTimeoutMs ?? 180_000;
    const now = this.#clock.now();
    return [...this.#specs.values()].sort((a, b) => (a.remoteCluster < b.remoteCluster ? -1 : 1)).map((spec): CableStatus => {
      const base = { remoteCluster: spec.remoteCluster, remoteIp: spec.remoteIp };
      const failed = this.#failed.get(spec.remoteCluster);
      if (failed !== undefined) return { ...base, state: 'error', message: failed };
      if (dump === undefined) return { ...base, state: 'error', message: `the WireGuard device ${this.device} is gone; the next init() or set() recreates it` };
      const peer = dump.peers.find((p) => p.publicKey === spec.backend['public-key']);
      if (peer === undefined) return { ...base, state: 'error', message: 'the peer is not on the device; the next set() adds it' };
      const counters = { rxBytes: peer.rxBytes, txBytes: peer.txBytes };
      if (peer.latestHandshake === undefined) return { ...base, ...counters, state: 'connecting', message: 'no handshake yet' };
      const age = now - peer.latestHandshake;
      if (age < timeout) return { ...base, ...counters, state: 'connected', establishedAt: peer.latestHandshake };
      return { ...base, ...counters, state: 'connecting', message: `last handshake ${String(Math.round(age / 1000))} s ago`, establishedAt: peer.latestHandshake };
    });
  }

  async #cleanup(): Promise<void> {
    if ((await readLink(this.#runner, this.device)) !== undefined) await ipChange(this.#runner, ['link', 'del', 'dev', this.device]);
    await this.#wg.removeSocket(this.device);
    this.#specs.clear();
    this.#failed.clear();
    this.#applied.clear();
    this.#log.info({ device: this.device }, 'WireGuard device removed');
  }
}
