import { createHash } from 'node:crypto';
import {
  Serial, ErrorCodes, IsthmusError, cidrSize, messageOf, nthAddress, parseCidr, parseIp, type CommandRunner, type Logger,
} from '../../core/index.ts';
import { uniqueSpecs, type CableDriver, type CableSpec, type CableStatus, type DriverDeps, type LocalEndpoint, type SetResult } from './driver.ts';
import { runBatch } from './batch.ts';
import { VxlanOrigin, originRuleset } from './vxlan-origin.ts';
import { NO_SUCH_ROUTE, badPort, checkCommonSpec, formatIpText, ipChange, readLink, readRoutes, underlayMtu } from './wireguard.ts';

/** What iproute2 says when a route, neighbour or FDB entry to delete is already gone. */
const NO_SUCH_ENTRY = new RegExp(`${NO_SUCH_ROUTE.source}|No such file or directory|RTNETLINK answers: No such`);

/**
 * VxlanDriver: plain (unencrypted) kernel VXLAN for trusted networks — device `vx-isthmus`,
 * VNI `options.vni` (default 100), UDP `dstport` = `LocalEndpoint.port` (4789 by default in
 * the engine), `local` = `LocalEndpoint.privateIp`, `nolearning`.
 *
 * Addressing, designed so that nothing is ever learnt or ARPed:
 * - Every cluster has a tunnel address, a /32 inside `options.tunnelCidr` (default
 *   240.0.0.0/8, reserved address space that no cluster uses), derived from its cluster id
 *   (SHA-256 of the id → a host index). Both ends compute each other's address from the
 *   cluster ids they already know, so the Endpoint needs no extra field, and a gateway
 *   failover inside a cluster keeps the address. Two clusters whose ids hash to the same
 *   address: the later cable (by id) is refused with the reason; set another tunnelCidr.
 * - Every cluster's VTEP MAC is 02:69 followed by the 4 bytes of its tunnel address
 *   (locally administered, unicast); the local device is created with it.
 * - The local device carries its tunnel address as a /32. Per remote cluster R:
 *     bridge fdb replace MAC_R dev vx-isthmus dst REMOTE_IP [port P] self permanent
 *     ip neigh replace T_R lladdr MAC_R dev vx-isthmus nud permanent
 *     ip route replace T_R/32 dev vx-isthmus proto static
 *     ip route replace CIDR via T_R dev vx-isthmus onlink proto static   (each remote CIDR)
 *   One unicast FDB entry per remote gateway (rather than all-zero flood entries), so a
 *   frame goes to its own remote only, and permanent neighbour entries, so there is no ARP.
 * - MTU: underlay MTU − 50 (IPv4 underlay: 20 IP + 8 UDP + 8 VXLAN + 14 Ethernet) or − 70 (IPv6).
 *
 * set() keeps the CableDriver invariants like the WireGuard driver: reads the FDB, the
 * neighbours and the routes, runs only the difference (adds and updates first, then
 * removals), and a refused spec (bad address, port, CIDR, VNI or address family) fails only
 * its own cable. The changes are batched (batch.ts): one `bridge -batch` for the FDB
 * entries, one `ip -batch` for neighbours and routes, then one of each for the removals —
 * about 4 processes for 100 remotes instead of 500; a failing line fails only the cable it
 * belongs to (a cable whose FDB entry failed gets no neighbour or routes). init() adopts a device whose VNI, port and local address match, and
 * recreates it otherwise.
 *
 * Origin check (vxlan-origin.ts): before any FDB entry or route of a set(), the table
 * `inet isthmus-vxlan` lets in only VXLAN packets from the planned remotes' underlay
 * addresses whose inner source lies in that remote's CIDRs (or is its tunnel address). If
 * it cannot be applied, every cable fails (its entries are removed): no cable without it.
 * cleanup() removes it with the device.
 *
 * Status: VXLAN has no handshake. connections() says `connected` when the cable's FDB entry,
 * neighbour entry and routes are in place, `error` when something is missing or refused.
 * Whether packets actually arrive is for the engine's health probe (RTT, loss) to say.
 */
export interface VxlanDriverOptions {
  /** Device name; default "vx-isthmus". */
  readonly device?: string;
  /** VXLAN network identifier; default 100. A remote whose backend "vni" differs is refused. */
  readonly vni?: number;
  /** The range tunnel addresses come from; default 240.0.0.0/8 (IPv4, prefix ≤ 30). */
  readonly tunnelCidr?: string;
  /** Device MTU; default underlay MTU − 50 (IPv4) / − 70 (IPv6). */
  readonly mtu?: number;
}

export const VXLAN_DEVICE = 'vx-isthmus';
export const VXLAN_DEFAULT_VNI = 100;
export const VXLAN_TUNNEL_CIDR = '240.0.0.0/8';

/** The tunnel address of a cluster (pure). */
export function tunnelAddress(clusterId: string, tunnelCidr = VXLAN_TUNNEL_CIDR): string {
  const c = parseCidr(tunnelCidr);
  if (c.family !== 4 || c.prefix > 30) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `tunnel CIDR ${tunnelCidr} must be IPv4 with a prefix of at most /30`);
  const h = createHash('sha256').update(clusterId).digest().readUInt32BE(0);
  const usable = cidrSize(c) - 2n; // neither the network nor the broadcast address
  return nthAddress(c, 1n + (BigInt(h) % usable));
}

/** The VTEP MAC of a tunnel address: 02:69 + its 4 bytes. */
export function vtepMac(tunnelIp: string): string {
  const v = parseIp(tunnelIp).value;
  const bytes = [24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn).toString(16).padStart(2, '0'));
  return ['02', '69', ...bytes].join(':');
}

export interface VxlanPeerPlan {
  readonly remoteCluster: string;
  readonly remoteIp: string;
  /** UDP port of the remote VTEP; undefined when it is the local dstport. */
  readonly port: number | undefined;
  readonly tunnelIp: string;
  readonly mac: string;
  readonly routes: readonly string[];
}

export interface VxlanPlan {
  readonly peers: readonly VxlanPeerPlan[];
  readonly refused: readonly { remoteCluster: string; reason: string }[];
}

/** Pure: the remotes a set of specs asks for, and the specs refused with the reason. */
export function planVxlan(
  local: { clusterId: string; privateIp: string; port: number; cidrs: readonly string[]; vni: number; tunnelCidr: string },
  specs: readonly CableSpec[],
): VxlanPlan {
  const taken: { cidr: string; owner: string }[] = local.cidrs.map((cidr) => ({ cidr, owner: 'this cluster' }));
  const localTunnel = tunnelAddress(local.clusterId, local.tunnelCidr);
  const tunnels = new Map<string, string>([[localTunnel, 'this cluster']]);
  const family = parseIp(local.privateIp).family;
  const peers: VxlanPeerPlan[] = [];
  const refused: { remoteCluster: string; reason: string }[] = [];
  for (const spec of uniqueSpecs(specs, refused)) {
    const refuse = (reason: string): void => void refused.push({ remoteCluster: spec.remoteCluster, reason });
    const vni = spec.backend['vni'];
    if (vni !== undefined && vni !== String(local.vni)) {
      refuse(`the remote VNI ${vni} is not this gateway's ${String(local.vni)}: configure the same VNI in every cluster`);
      continue;
    }
    const common = checkCommonSpec(spec, taken);
    if ('reason' in common) {
      refuse(common.reason);
      continue;
    }
    if (parseIp(spec.remoteIp).family !== family) {
      refuse(`remote address ${spec.remoteIp} is not of the underlay's address family (IPv${String(family)})`);
      continue;
    }
    const tunnelIp = tunnelAddress(spec.remoteCluster, local.tunnelCidr);
    const clash = tunnels.get(tunnelIp);
    if (clash !== undefined) {
      refuse(`its tunnel address ${tunnelIp} is also ${clash}'s: set another tunnel CIDR`);
      continue;
    }
    tunnels.set(tunnelIp, `cluster ${spec.remoteCluster}`);
    for (const cidr of common.cidrs) taken.push({ cidr, owner: `cluster ${spec.remoteCluster}` });
    peers.push({
      remoteCluster: spec.remoteCluster,
      remoteIp: formatIpText(spec.remoteIp),
      port: spec.remotePort === local.port ? undefined : spec.remotePort,
      tunnelIp,
      mac: vtepMac(tunnelIp),
      routes: common.cidrs,
    });
  }
  return { peers, refused };
}

interface FdbEntry {
  readonly mac: string;
  readonly dst: string;
  readonly port: number | undefined;
}

interface VxlanLinkData {
  readonly id?: number;
  readonly port?: number;
  readonly local?: string;
  readonly local6?: string;
  readonly learning?: boolean;
}

export class VxlanDriver implements CableDriver {
  readonly name = 'vxlan' as const;
  readonly device: string;
  readonly vni: number;
  readonly tunnelCidr: string;
  readonly #runner: CommandRunner;
  readonly #log: Logger;
  readonly #options: VxlanDriverOptions;
  #local: LocalEndpoint | undefined;
  #specs = new Map<string, CableSpec>();
  #failed = new Map<string, string>();
  #plan: VxlanPlan = { peers: [], refused: [] };
  readonly #origin: VxlanOrigin;

  constructor(deps: DriverDeps, options: VxlanDriverOptions = {}) {
    this.#runner = deps.runner;
    this.#origin = new VxlanOrigin(deps.runner);
    this.#log = deps.logger;
    this.#options = options;
    this.device = options.device ?? VXLAN_DEVICE;
    this.vni = options.vni ?? VXLAN_DEFAULT_VNI;
    this.tunnelCidr = options.tunnelCidr ?? VXLAN_TUNNEL_CIDR;
  }

  routeDevice(): string {
    return this.device;
  }

  implementationInfo(): string | undefined {
    return this.#local === undefined ? undefined : 'kernel VXLAN';
  }

  /** This cluster's tunnel address, known after init(). */
  get tunnelIp(): string | undefined {
    return this.#local === undefined ? undefined : tunnelAddress(this.#local.clusterId, this.tunnelCidr);
  }

  /** init, set and cleanup run one at a time, in call order (the engine's reconcile and a restart path may overlap). */
  readonly #serial = new Serial();

  init(local: LocalEndpoint): Promise<void> {
    return this.#serial.run(() => this.#init(local));
  }

  set(desired: readonly CableSpec[]): Promise<SetResult> {
    return this.#serial.run(() => this.#set(desired));
  }

  cleanup(): Promise<void> {
    return this.#serial.run(() => this.#cleanup());
  }

  /** ip and bridge (iproute2) must be installed, and nft able to read the ruleset (the origin check). */
  async preflight(): Promise<void> {
    await this.#runner.run('ip', ['-V']);
    await this.#runner.run('bridge', ['-V']);
    await this.#origin.preflight();
  }

  async #init(local: LocalEndpoint): Promise<void> {
    if (!Number.isInteger(this.vni) || this.vni < 1 || this.vni > 16_777_215) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `VXLAN VNI ${String(this.vni)} is not 1-16777215`);
    const port = badPort(local.port);
    if (port !== undefined) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `the VXLAN ${port}`);
    try {
      parseIp(local.privateIp);
    } catch (err) {
      throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `the gateway's private IP: ${messageOf(err)}`);
    }
    if (typeof local.clusterId !== 'string' || local.clusterId === '') throw new IsthmusError(ErrorCodes.INVALID_CONFIG, 'the VXLAN driver needs the cluster id');
    tunnelAddress(local.clusterId, this.tunnelCidr); // validates tunnelCidr
    this.#local = { ...local, privateIp: formatIpText(local.privateIp) };
    await this.#ensureDevice();
  }

  #requireLocal(): LocalEndpoint {
    if (this.#local === undefined) throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, 'the VXLAN driver was used before init(): call init() first');
    return this.#local;
  }

  async #ensureDevice(): Promise<void> {
    const local = this.#requireLocal();
    const tunnelIp = tunnelAddress(local.clusterId, this.tunnelCidr);
    const mac = vtepMac(tunnelIp);
    const v6 = parseIp(local.privateIp).family === 6;
    let link = await readLink(this.#runner, this.device);
    if (link !== undefined) {
      const data = await this.#linkData();
      const ok = link.kind === 'vxlan' && data.id === this.vni && data.port === local.port && (v6 ? data.local6 : data.local) === local.privateIp && data.learning === false && link.address === mac;
      if (ok) {
        this.#log.info({ device: this.device }, 'adopted the existing VXLAN device');
      } else {
        this.#log.warn({ device: this.device, vni: data.id, port: data.port }, 'the existing VXLAN device has other settings: recreating it');
        await ipChange(this.#runner, ['link', 'del', 'dev', this.device]);
        link = undefined;
      }
    }
    if (link === undefined) {
      await ipChange(this.#runner, ['link', 'add', this.device, 'address', mac, 'type', 'vxlan', 'id', String(this.vni), 'dstport', String(local.port), 'local', local.privateIp, 'nolearning']);
      this.#log.info({ device: this.device, vni: this.vni, port: local.port, tunnelIp }, 'created the VXLAN device');
      link = await readLink(this.#runner, this.device);
      if (link === undefined) throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `the VXLAN device ${this.device} is missing right after it was created`);
    }
    const mtu = this.#options.mtu ?? (await underlayMtu(this.#runner, local.privateIp)) - (v6 ? 70 : 50);
    if (link.mtu !== mtu) await ipChange(this.#runner, ['link', 'set', 'dev', this.device, 'mtu', String(mtu)]);
    const addrs = await this.#addresses();
    if (!addrs.includes(`${tunnelIp}/32`)) await ipChange(this.#runner, ['addr', 'add', `${tunnelIp}/32`, 'dev', this.device]);
    for (const a of addrs) if (a !== `${tunnelIp}/32`) await ipChange(this.#runner, ['addr', 'del', a, 'dev', this.device]);
    if (!link.up) await ipChange(this.#runner, ['link', 'set', 'dev', this.device, 'up']);
  }

  async #linkData(): Promise<VxlanLinkData> {
    const r = await this.#runner.run('ip', ['-j', '-d', 'link', 'show', 'dev', this.device]);
    const j = (JSON.parse(r.stdout) as { linkinfo?: { info_data?: VxlanLinkData } }[])[0];
    return j?.linkinfo?.info_data ?? {};
  }

  /** Global addresses on the device ("a.b.c.d/len"), link-local IPv6 left out. */
  async #addresses(): Promise<string[]> {
    const r = await this.#runner.run('ip', ['-j', 'addr', 'show', 'dev', this.device]);
    const j = (JSON.parse(r.stdout) as { addr_info?: { local: string; prefixlen: number; scope?: string }[] }[])[0];
    return (j?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${String(a.prefixlen)}`);
  }

  async #fdb(): Promise<FdbEntry[]> {
    const r = await this.#runner.run('bridge', ['-j', 'fdb', 'show', 'dev', this.device]);
    const entries = r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as { mac: string; dst?: string; port?: number }[]);
    return entries.filter((e) => e.dst !== undefined).map((e) => ({ mac: e.mac, dst: formatIpText(e.dst ?? ''), port: e.port }));
  }

  async #neighbours(): Promise<Map<string, string>> {
    const r = await this.#runner.run('ip', ['-j', 'neigh', 'show', 'dev', this.device]);
    const entries = r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as { dst: string; lladdr?: string; state?: string[] }[]);
    return new Map(entries.filter((e) => (e.state ?? []).includes('PERMANENT')).map((e) => [e.dst, e.lladdr ?? '']));
  }

  async #set(desired: readonly CableSpec[]): Promise<SetResult> {
    const local = this.#requireLocal();
    this.#specs = new Map(desired.map((s) => [s.remoteCluster, s]));
    this.#failed = new Map();
    const plan = planVxlan({ ...local, vni: this.vni, tunnelCidr: this.tunnelCidr }, desired);
    this.#plan = plan;
    for (const r of plan.refused) {
      this.#failed.set(r.remoteCluster, r.reason);
      this.#log.warn({ remoteCluster: r.remoteCluster, reason: r.reason }, 'VXLAN cable refused');
    }
    if ((await readLink(this.#runner, this.device)) === undefined) await this.#ensureDevice();
    try {
      const ruleset = originRuleset({ port: local.port, vni: this.vni, peers: plan.peers });
      if (await this.#origin.set(ruleset)) this.#log.info({ remotes: plan.peers.length }, 'VXLAN origin check applied');
    } catch (err) {
      const reason = `the origin check (nftables table isthmus-vxlan) could not be applied, so no VXLAN cable is set up: ${messageOf(err)}`;
      for (const p of plan.peers) this.#failed.set(p.remoteCluster, reason);
      this.#log.error({ err: messageOf(err) }, 'VXLAN origin check not applied: every cable fails');
    }
    const fdb = await this.#fdb();
    const neigh = await this.#neighbours();
    const routes = await readRoutes(this.#runner, this.device);
    const keepMacs = new Set<string>();
    const keepNeigh = new Set<string>();
    const keepRoutes = new Set<string>();
    const fail = (remoteCluster: string, reason: string): void => {
      if (this.#failed.has(remoteCluster)) return;
      this.#failed.set(remoteCluster, reason);
      this.#log.warn({ remoteCluster, err: reason }, 'VXLAN cable failed');
    };

    // adds and updates: the FDB entries in one `bridge -batch`, then, for the cables whose
    // FDB entry is in place, neighbours and routes in one `ip -batch`
    type Item = { readonly p: VxlanPeerPlan; readonly args: readonly string[]; readonly keep: () => void };
    const fdbItems: Item[] = [];
    for (const p of plan.peers) {
      if (this.#failed.has(p.remoteCluster)) continue;
      const entry = fdb.find((e) => e.mac === p.mac);
      const keep = (): void => void keepMacs.add(p.mac);
      if (entry?.dst !== p.remoteIp || (entry.port ?? local.port) !== (p.port ?? local.port) || fdb.filter((e) => e.mac === p.mac).length > 1) {
        fdbItems.push({ p, keep, args: ['fdb', 'replace', p.mac, 'dev', this.device, 'dst', p.remoteIp, ...(p.port === undefined ? [] : ['port', String(p.port)]), 'self', 'permanent'] });
      } else keep();
    }
    for (const [i, reason] of await runBatch(this.#runner, 'bridge', fdbItems)) {
      const item = fdbItems[i];
      if (item !== undefined) fail(item.p.remoteCluster, reason);
    }
    const ipItems: Item[] = [];
    for (const item of fdbItems) if (!this.#failed.has(item.p.remoteCluster)) item.keep();
    for (const p of plan.peers) {
      if (this.#failed.has(p.remoteCluster)) continue;
      const host = `${p.tunnelIp}/32`;
      const wanted: [boolean, readonly string[], () => void][] = [
        [neigh.get(p.tunnelIp) !== p.mac, ['neigh', 'replace', p.tunnelIp, 'lladdr', p.mac, 'dev', this.device, 'nud', 'permanent'], () => void keepNeigh.add(p.tunnelIp)],
        [routes.get(host) !== '', ['route', 'replace', host, 'dev', this.device, 'proto', 'static'], () => void keepRoutes.add(host)],
        ...p.routes.map((cidr): [boolean, readonly string[], () => void] => [routes.get(cidr) !== p.tunnelIp, ['route', 'replace', cidr, 'via', p.tunnelIp, 'dev', this.device, 'onlink', 'proto', 'static'], () => void keepRoutes.add(cidr)]),
      ];
      for (const [needed, args, keep] of wanted) {
        if (needed) ipItems.push({ p, args, keep });
        else keep();
      }
    }
    const ipFailures = await runBatch(this.#runner, 'ip', ipItems);
    ipItems.forEach((item, i) => {
      const reason = ipFailures.get(i);
      if (reason === undefined) item.keep();
      else fail(item.p.remoteCluster, reason);
    });
    for (const p of plan.peers) {
      if (!this.#failed.has(p.remoteCluster) && !fdb.some((e) => e.mac === p.mac)) this.#log.info({ remoteCluster: p.remoteCluster, remoteIp: p.remoteIp, tunnelIp: p.tunnelIp, cidrs: p.routes }, 'VXLAN cable added');
    }

    // removals, after every add: routes and neighbours in one `ip -batch`, FDB entries in one `bridge -batch`
    const ipDels = [
      ...[...routes.keys()].filter((cidr) => !keepRoutes.has(cidr)).map((cidr) => ['route', 'del', cidr, 'dev', this.device]),
      ...[...neigh.keys()].filter((ip) => !keepNeigh.has(ip)).map((ip) => ['neigh', 'del', ip, 'dev', this.device]),
    ].map((args) => ({ args }));
    const fdbDels = fdb.filter((e) => !keepMacs.has(e.mac)).map((e) => ({ args: ['fdb', 'del', e.mac, 'dev', this.device, 'dst', e.dst, 'self'] }));
    for (const [tool, items] of [['ip', ipDels], ['bridge', fdbDels]] as const) {
      for (const [, reason] of await runBatch(this.#runner, tool, items, { gone: NO_SUCH_ENTRY })) this.#log.warn({ err: reason }, 'could not remove a stale VXLAN entry');
    }
    return { failed: [...this.#failed].map(([remoteCluster, reason]) => ({ remoteCluster, reason })) };
  }

  async connections(): Promise<readonly CableStatus[]> {
    const exists = this.#local !== undefined && (await readLink(this.#runner, this.device)) !== undefined;
    const fdb = exists ? await this.#fdb() : [];
    const neigh = exists ? await this.#neighbours() : new Map<string, string>();
    const routes = exists ? await readRoutes(this.#runner, this.device) : new Map<string, string>();
    return [...this.#specs.values()].sort((a, b) => (a.remoteCluster < b.remoteCluster ? -1 : 1)).map((spec): CableStatus => {
      const base = { remoteCluster: spec.remoteCluster, remoteIp: spec.remoteIp };
      const failed = this.#failed.get(spec.remoteCluster);
      if (failed !== undefined) return { ...base, state: 'error', message: failed };
      if (!exists) return { ...base, state: 'error', message: `the VXLAN device ${this.device} is gone; the next set() recreates it` };
      const p = this.#plan.peers.find((x) => x.remoteCluster === spec.remoteCluster);
      if (p === undefined) return { ...base, state: 'error', message: 'the cable is not planned; call set()' };
      const missing: string[] = [];
      if (!fdb.some((e) => e.mac === p.mac && e.dst === p.remoteIp)) missing.push('FDB entry');
      if (neigh.get(p.tunnelIp) !== p.mac) missing.push('neighbour entry');
      for (const cidr of p.routes) if (routes.get(cidr) !== p.tunnelIp) missing.push(`route ${cidr}`);
      if (missing.length > 0) return { ...base, state: 'error', message: `missing ${missing.join(', ')}; the next set() restores it` };
      return { ...base, state: 'connected' };
    });
  }

  async #cleanup(): Promise<void> {
    await this.#origin.cleanup();
    if ((await readLink(this.#runner, this.device)) !== undefined) {
      await ipChange(this.#runner, ['link', 'del', 'dev', this.device]);
      this.#log.info({ device: this.device }, 'VXLAN device removed');
    }
    this.#specs.clear();
    this.#failed.clear();
    this.#plan = { peers: [], refused: [] };
  }
}
