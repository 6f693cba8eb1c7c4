import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, IsthmusError, cidrContains, formatCidr, messageOf, missingDependency, parseCidr, parseIp, type CommandRunner, type Logger } from '../../core/index.ts';
import { runBatch } from './batch.ts';
import { CHARON_PATH, Charon, PLUGIN_DIR, charonPlugins, exists, installedPlugins, missingPluginsError, type DataPath } from './charon.ts';
import type { CableDriver, CableSpec, CableStatus, LocalEndpoint, SetResult } from './driver.ts';
import {
  LABEL, NAME_PREFIX, ROUTE_TABLE, RULE_PRIORITY, TUN_DEVICE, authFromSecrets, cableStatus, childName, connConfig, connName, failureReason,
  hasTableRule, hostPrefix, isInitiator, parseAddresses, parseListSas, parseRoutes, pemBlocks, planAnchors, planRoutes, preferredSource,
  specKey, specProblem, str, type ConnTimings, type HostAddress, type IpsecAuth, type SaView,
} from './ipsec-config.ts';
import { ViciClient, yes, type EventHandler } from './vici.ts';

export * from './ipsec-config.ts';

/**
 * The `ipsec` cable driver: IKEv2 through one strongSwan charon per gateway (see
 * charon.ts), configured only over VICI.
 *
 * - Credentials (init): certificate mode (secrets certPem/keyPem/caPem) loads the CA with
 *   load-cert flag CA, the gateway certificate with load-cert, its key with load-key; the
 *   IKE identity is the certificate's CN, which must also be a DNS SAN (as `isthmus certs`
 *   issues them). PSK mode (secrets.psk, no certPem) loads one clusterset-wide IKE secret
 *   with load-shared and uses the cluster ids as identities.
 * - One connection per remote cluster, `isthmus-<remote>` (child `isthmus-<remote>-net`):
 *   local_ts = the local CIDRs, remote_ts = the remote CIDRs, tunnel mode, encap =
 *   natTraversal (forced UDP encapsulation), DPD, rekeying. The remote identity is the
 *   backend's `cert-cn`, else the remote cluster id.
 * - Initiation: the side whose cluster id sorts lower initiates (and re-initiates whenever
 *   its cable has no IKE_SA); the other responds, and initiates itself only when no IKE_SA
 *   appeared within a grace period (3 s with natTraversal, else 15 s: the lower side may
 *   sit behind a NAT that lets nothing in), or at once after its charon restarted (the peers
 *   still hold the old SAs; the new IKE_SA's INITIAL_CONTACT replaces them). Both accept.
 * - Idempotence: what was loaded is kept (and persisted without secrets in
 *   `<dir>/state.json`); `set` touches only cables whose spec changed. A new driver
 *   instance adopts a running charon, reads the state back and re-initiates nothing that
 *   is up. If charon died, init()/set() restart it and load everything again.
 * - Data path with kernel-libipsec: charon's TUN device `ipsec0`. charon installs one
 *   route per outbound policy (local CIDR × remote CIDR) in table 220 (with an `ip rule` at
 *   priority 220, which its kernel-netlink plugin adds at start whenever routing_table is
 *   set; `install_routes = no` does not stop kernel-libipsec from routing), sourced from an
 *   address the host holds inside that policy's local CIDR. strongSwan before 5.9.12 fails
 *   the policy, and with it the whole CHILD_SA (TS_UNACCEPTABLE to the peer), when the host
 *   holds no address in one of its local CIDRs, as a node holds none in its service CIDR.
 *   So for every local CIDR without an address of the host the driver puts an anchor on
 *   `lo`: the CIDR's network address, which Kubernetes never gives to a pod or a ClusterIP
 *   (kept in the state file; removed when its CIDR goes and by cleanup()). charon's routes
 *   for one remote CIDR then differ only in their source and the last policy's wins, which
 *   would make the gateway send its own packets from an anchor. The driver therefore owns
 *   the routes that count: in table 219, looked up by an `ip rule` at priority 219 before
 *   charon's, one route per remote CIDR of every cable, `dev ipsec0`, sourced from the
 *   host's own address in its first local CIDR that has one (an anchor only when it has
 *   none), so the gateway's packets match the SA's selectors. set() compares them with
 *   `ip -j route show table 219` and changes only what differs; init() and the restart
 *   after charon died put them back (a new ipsec0 has no routes). charon's table stays as
 *   the fallback. Traffic the gateway forwards (pods of its cluster, with ip_forward on)
 *   carries its own in-CIDR source; decrypted packets come out of ipsec0, whose routes
 *   also satisfy rp_filter. A remote CIDR that holds the remote gateway's address gets no
 *   route of ours (charon's table has an exclude route for the peer; ours would not).
 * - On XFRM kernels charon's kernel-netlink plugin keeps installing the routes (towards
 *   the underlay interface; the kernel's policies encrypt): it shares one route among the
 *   policies of a destination, and a local CIDR without an address of the host only costs
 *   that policy its route, not the CHILD_SA. No anchors and no routes of the driver there.
 *   ipsec0 has MTU 1400: MSS clamping is the route agent's.
 */

export interface IpsecDriverOptions {
  readonly runner: CommandRunner;
  readonly logger: Logger;
  /** Private folder for charon's configuration, socket, pid file, log and the driver's state. */
  readonly dir: string;
  /** 'auto' (default): kernel XFRM when the kernel has ESP, else kernel-libipsec. */
  readonly dataPath?: DataPath | 'auto';
  readonly charonPath?: string;
  /** Where charon's plugins are (default /usr/lib/ipsec/plugins): preflight() looks for each one it needs there. */
  readonly pluginDir?: string;
  /** NAT-T port (default 4500 when the IKE port is 500, else IKE port + 1). */
  readonly portNatT?: number;
  /** DPD interval (default '5s'), IKE and CHILD rekey times (default '4h', '1h'). */
  readonly dpdDelay?: string;
  readonly ikeRekeyTime?: string;
  readonly childRekeyTime?: string;
  /** Bounds of the initiator's retry delay after a failed attempt (default 1 000 and 10 000 ms). */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** How long one initiation may take (default 20 000 ms). */
  readonly initiateTimeoutMs?: number;
  /**
   * How long the responder (higher cluster id) waits without an IKE_SA before it initiates
   * too: default 15 000 ms, 3 000 ms for cables with natTraversal (the initiator may be
   * behind a NAT that lets nothing in).
   */
  readonly responderGraceMs?: number;
  readonly responderGraceNatMs?: number;
  /** Restart charon (and load everything again) when it goes away (default true), after this delay (default 1 000 ms, doubling on failure). */
  readonly autoRestart?: boolean;
  readonly autoRestartDelayMs?: number;
}

const STALE = 'stale';

function credentialsHash(local: LocalEndpoint): string {
  const h = createHash('sha256');
  for (const k of ['certPem', 'keyPem', 'caPem', 'psk']) h.update(`${k}\0${local.secrets[k] ?? ''}\0`);
  return h.digest('hex');
}

function localKey(l: LocalEndpoint, auth: IpsecAuth | undefined): string {
  return JSON.stringify([l.clusterId, l.privateIp, l.port, [...l.cidrs], auth?.mode, auth?.localId]);
}

interface Applied {
  readonly spec: CableSpec;
  readonly key: string;
}

interface StateFile {
  readonly version: 1;
  readonly local: { clusterId: string; privateIp: string; port: number; cidrs: readonly string[]; auth: IpsecAuth['mode'] };
  readonly cables: readonly CableSpec[];
  /** Anchor addresses the driver put on lo (libipsec). */
  readonly anchors?: readonly string[];
}

/** What the supervisor (see #supervise) keeps per cable. */
interface Watch {
  /** Since when the cable has had no IKE_SA (ms), while it has none. */
  noSaSince: number | undefined;
  /** Earliest next initiation after a failure (ms) and the backoff delay. */
  nextTryAt: number;
  delay: number;
  /** The initiation in flight, and how to abandon it. */
  inFlight: Promise<void> | undefined;
  abort: AbortController | undefined;
}

export class IpsecDriver implements CableDriver {
  readonly name = 'ipsec' as const;
  readonly #o: IpsecDriverOptions;
  readonly #log: Logger;
  readonly #timings: ConnTimings;
  #charon: Charon | undefined;
  #local: LocalEndpoint | undefined;
  #auth: IpsecAuth | undefined;
  #vici: ViciClient | undefined;
  readonly #applied = new Map<string, Applied>();
  readonly #failed = new Map<string, { spec: CableSpec; reason: string }>();
  readonly #lastError = new Map<string, string>();
  readonly #watches = new Map<string, Watch>();
  #supervisor: { abort: AbortController; done: Promise<void> } | undefined;
  #wake: (() => void) | undefined;
  /** establishedAt per IKE_SA unique id, fixed at first sight (charon reports whole seconds). */
  readonly #establishedAt = new Map<string, number>();
  #ensuring: Promise<void> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  readonly #initiateNow = new Set<string>();
  /** Digest of the credentials loaded into charon (kept in memory only). */
  #loadedCreds: string | undefined;
  /** Anchor addresses this driver put on lo (libipsec), kept in the state file. */
  #anchors: string[] = [];
  /** The host's addresses at the last anchor check. */
  #hostAddresses: HostAddress[] = [];
  /** IKE_SAs that came up while this driver watched (ike-updown up=yes), for tests and metrics. */
  ikeUps = 0;
  /** IKE_SA rekeyings seen (ike-rekey events). */
  ikeRekeys = 0;
  /** How many times this driver started charon (not counting adoptions). */
  charonStarts = 0;

  constructor(options: IpsecDriverOptions) {
    this.#o = options;
    this.#log = options.logger.child({ driver: 'ipsec' });
    this.#timings = { dpdDelay: options.dpdDelay ?? '5s', ikeRekeyTime: options.ikeRekeyTime ?? '4h', childRekeyTime: options.childRekeyTime ?? '1h' };
  }

  get stateFile(): string {
    return join(this.#o.dir, 'state.json');
  }

  routeDevice(): string | undefined {
    return this.#charon?.dataPath === 'libipsec' ? TUN_DEVICE : undefined;
  }

  implementationInfo(): string | undefined {
    const dataPath = this.#charon?.dataPath;
    return dataPath === undefined ? undefined : `strongSwan charon, ${dataPath === 'xfrm' ? 'kernel XFRM' : 'kernel-libipsec (userspace)'} data path`;
  }

  /** The charon behind this driver (after init). */
  get charon(): Charon | undefined {
    return this.#charon;
  }

  /**
   * charon must be installed (strongswan-charon) with every plugin the driver loads
   * (`charonPlugins`: x509, openssl's public keys, ciphers and AEAD, gcm, vici, …; the
   * error names the Debian package). The driver speaks VICI itself, so the swanctl
   * command is not needed. kernel-libipsec is checked when charon starts (the data path is
   * probed then); a plugin whose file exists but fails to load is caught there too.
   */
  async preflight(): Promise<void> {
    if (!(await exists(this.#o.charonPath ?? CHARON_PATH))) throw missingDependency('charon');
    const needed = charonPlugins(this.#o.dataPath === 'libipsec' ? 'libipsec' : 'xfrm');
    const dir = this.#o.pluginDir ?? PLUGIN_DIR;
    const missing = missingPluginsError(needed, await installedPlugins(dir), 'installed', dir);
    if (missing !== undefined) throw missing;
  }

  async init(local: LocalEndpoint): Promise<void> {
    parseIp(local.privateIp);
    if (!LABEL.test(local.clusterId)) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `cluster id ${JSON.stringify(local.clusterId)} is not an RFC-1123 label`);
    if (local.cidrs.length === 0) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, 'the local cluster has no CIDRs to put into the IPsec traffic selectors');
    for (const c of local.cidrs) parseCidr(c);
    const auth = authFromSecrets(local);
    if (this.#local !== undefined && localKey(this.#local, this.#auth) !== localKey(local, auth)) {
      // every connection holds the local address, port, CIDRs and identity: reload them all at the next set()
      for (const [remote, a] of this.#applied) this.#applied.set(remote, { spec: a.spec, key: STALE });
    }
    this.#local = local;
    this.#auth = auth;
    this.#charon ??= new Charon({
      runner: this.#o.runner,
      logger: this.#log,
      dir: this.#o.dir,
      port: local.port,
      portNatT: this.#o.portNatT ?? (local.port === 500 ? 4500 : local.port + 1),
      ...(this.#o.dataPath === undefined ? {} : { dataPath: this.#o.dataPath }),
      ...(this.#o.charonPath === undefined ? {} : { charonPath: this.#o.charonPath }),
    });
    if (this.#applied.size === 0) await this.#readState(local, auth);
    await this.#ensureCharon(true);
  }

  async #readState(local: LocalEndpoint, auth: IpsecAuth): Promise<void> {
    let state: StateFile;
    try {
      state = JSON.parse(await readFile(this.stateFile, 'utf8')) as StateFile;
    } catch {
      return;
    }
    if (this.#anchors.length === 0 && Array.isArray(state.anchors)) this.#anchors = state.anchors.filter((a) => typeof a === 'string');
    const same = state.version === 1 && state.local.clusterId === local.clusterId && state.local.privateIp === local.privateIp &&
      state.local.port === local.port && JSON.stringify(state.local.cidrs) === JSON.stringify(local.cidrs) && state.local.auth === auth.mode;
    for (const spec of state.cables) {
      // a changed local endpoint changes every connection: set() reloads them (and removes the unwanted)
      this.#applied.set(spec.remoteCluster, { spec, key: same ? specKey(spec) : STALE });
    }
  }

  async #writeState(): Promise<void> {
    const local = this.#local;
    const auth = this.#auth;
    if (local === undefined || auth === undefined) return;
    const state: StateFile = {
      version: 1,
      local: { clusterId: local.clusterId, privateIp: local.privateIp, port: local.port, cidrs: [...local.cidrs], auth: auth.mode },
      cables: [...this.#applied.values()].map((a) => a.spec),
      anchors: [...this.#anchors],
    };
    await mkdir(this.#o.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.stateFile}.tmp`;
    await writeFile(tmp, JSON.stringify(state, null, 1), { mode: 0o600 });
    await rename(tmp, this.stateFile);
  }

  /** charon runs and has our credentials and connections; restarts it when it died. */
  #ensureCharon(fromInit: boolean): Promise<void> {
    this.#ensuring ??= this.#doEnsure(fromInit).finally(() => {
      this.#ensuring = undefined;
    });
    return this.#ensuring;
  }

  async #doEnsure(fromInit: boolean): Promise<void> {
    const charon = this.#need().charon;
    if (!fromInit && this.#vici !== undefined && !this.#vici.closed && (await charon.pid()) !== undefined) return;
    const { started, pid } = await charon.ensure();
    if (started) this.charonStarts++;
    // before any CHILD_SA can be installed (a peer may initiate as soon as the connections are loaded)
    await this.#syncAnchors();
    const previous = this.#vici;
    this.#vici = undefined;
    previous?.close();
    const v = await charon.connect({ logger: this.#log, keepAlive: false });
    try {
      await v.on('ike-updown', this.#onIkeUpdown);
      await v.on('child-updown', this.#onChildUpdown);
      await v.on('ike-rekey', this.#onIkeRekey);
      const creds = credentialsHash(this.#need().local);
      if (started || this.#loadedCreds !== creds) {
        // an adopted charon may hold other (older) credentials of ours: replace them
        if (!started) await v.request('clear-creds');
        await this.#loadCredentials(v);
        this.#loadedCreds = creds;
      }
    } catch (err) {
      v.close();
      throw err;
    }
    const listed = (await v.request('get-conns'))['conns'];
    const conns = Array.isArray(listed) ? listed.map(String) : [];
    const failedNow: string[] = [];
    for (const [remote, a] of this.#applied) {
      if (!started && conns.includes(connName(remote))) continue;
      try {
        await this.#loadConn(v, a.spec);
      } catch (err) {
        this.#applied.delete(remote);
        this.#failed.set(remote, { spec: a.spec, reason: messageOf(err) });
        failedNow.push(remote);
      }
    }
    // a restarted charon lost its SAs while the peers may still hold theirs: initiate to every
    // peer now (whatever the cluster-id order); the INITIAL_CONTACT makes them drop the stale ones
    if (started) for (const remote of this.#applied.keys()) this.#initiateNow.add(remote);
    this.#vici = v;
    void v.whenClosed().then((why) => this.#onViciClosed(v, why));
    if (failedNow.length > 0) await this.#writeState();
    this.#startSupervisor();
    // a restarted charon has a new ipsec0, without routes; set() reports a failure per cable
    for (const [remote, reason] of await this.#syncRoutes()) this.#log.warn({ remote, reason }, 'ipsec routes not installed');
    this.#log.info({ pid, started, cables: this.#applied.size, dataPath: charon.dataPath }, started ? 'charon started, configuration loaded' : 'charon adopted');
  }

  /**
   * libipsec: an address of the host in every local CIDR (see "Data path" above). Adds the
   * missing anchors on lo, removes those whose CIDR is no longer local; reads only when
   * nothing is missing.
   */
  async #syncAnchors(): Promise<void> {
    const { local, charon } = this.#need();
    if (charon.dataPath !== 'libipsec') return;
    const run = this.#o.runner;
    this.#hostAddresses = parseAddresses((await run.run('ip', ['-j', 'address', 'show'])).stdout);
    const plan = planAnchors(local.cidrs, this.#hostAddresses, this.#anchors);
    if (plan.add.length === 0 && plan.remove.length === 0 && JSON.stringify(plan.anchors) === JSON.stringify(this.#anchors)) return;
    try {
      for (const ip of plan.add) {
        await run.run('ip', ['address', 'add', `${ip}/${hostPrefix(ip)}`, 'dev', 'lo']);
        this.#anchors = [...new Set([...this.#anchors, ip])];
        this.#log.info({ address: ip }, 'anchor address added on lo: charon needs an address of this host in every local CIDR');
      }
      for (const ip of plan.remove) {
        await run.run('ip', ['address', 'del', `${ip}/${hostPrefix(ip)}`, 'dev', 'lo'], { allowFailure: true });
        this.#log.info({ address: ip }, 'anchor address removed from lo (its CIDR is no longer local)');
      }
      this.#anchors = plan.anchors;
    } finally {
      await this.#writeState();
    }
  }

  /**
   * libipsec: the driver's routes (table 219, rule priority 219) to the remote CIDRs of every
   * applied cable, changing only what differs from `ip -j route show`; returns the cables
   * whose routes could not be installed, with the reason. Uses the addresses #syncAnchors read.
   */
  async #syncRoutes(): Promise<Map<string, string>> {
    const failed = new Map<string, string>();
    const { local, charon } = this.#need();
    if (charon.dataPath !== 'libipsec') return failed;
    const run = this.#o.runner;
    const table = String(ROUTE_TABLE);
    const families = new Set(local.cidrs.map((c) => parseCidr(c).family));
    for (const family of families) {
      const f = family === 4 ? '-4' : '-6';
      const want = new Map<string, string | undefined>();
      const owner = new Map<string, string>();
      const src = preferredSource(local.cidrs, this.#hostAddresses, this.#anchors, family);
      for (const [remote, a] of this.#applied) {
        for (const cidr of a.spec.remoteCidrs) {
          const c = parseCidr(cidr);
          if (c.family !== family || cidrContains(c, a.spec.remoteIp)) continue;
          const dst = formatCidr(c);
          want.set(dst, src);
          owner.set(dst, remote);
        }
      }
      try {
        if (want.size > 0 && !hasTableRule((await run.run('ip', ['-j', f, 'rule', 'show'])).stdout, RULE_PRIORITY, ROUTE_TABLE)) {
          await run.run('ip', [f, 'rule', 'add', 'priority', String(RULE_PRIORITY), 'table', table]);
        }
        const shown = await run.run('ip', ['-j', f, 'route', 'show', 'table', table], { allowFailure: true });
        // a table that never held a route does not exist yet
        if (shown.code !== 0 && !/does not exist/.test(shown.stderr)) throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `ip route show table ${table}: ${shown.stderr.trim()}`);
        const plan = planRoutes(want, shown.code === 0 ? parseRoutes(shown.stdout) : []);
        // one `ip -batch` for the replacements, then one for the removals (batch.ts); batch
        // lines take no -4/-6: the destination CIDR gives the family
        const replace = plan.replace.map((dst) => {
          const s = want.get(dst);
          return { dst, args: ['route', 'replace', dst, 'dev', TUN_DEVICE, 'table', table, 'proto', 'static', ...(s === undefined ? [] : ['src', s])] };
        });
        for (const [i, reason] of await runBatch(run, 'ip', replace)) {
          const dst = replace[i]?.dst ?? '';
          failed.set(owner.get(dst) ?? '', `route to ${dst} via ${TUN_DEVICE}: ${reason}`);
        }
        await runBatch(run, 'ip', plan.remove.map((dst) => ({ args: ['route', 'del', dst, 'table', table] })));
        if (plan.replace.length > 0 || plan.remove.length > 0) this.#log.info({ table: ROUTE_TABLE, src, replaced: plan.replace, removed: plan.remove }, 'ipsec routes updated');
      } catch (err) {
        for (const remote of new Set(owner.values())) if (!failed.has(remote)) failed.set(remote, `routes in table ${table}: ${messageOf(err)}`);
      }
    }
    return failed;
  }

  /** Removes the driver's rule, routes and anchors (cleanup; safe when none exist). */
  async #removeHostState(anchors: readonly string[]): Promise<void> {
    const run = this.#o.runner;
    const table = String(ROUTE_TABLE);
    for (const f of ['-4', '-6']) {
      await run.run('ip', [f, 'route', 'flush', 'table', table], { allowFailure: true });
      await run.run('ip', [f, 'rule', 'del', 'priority', String(RULE_PRIORITY), 'table', table], { allowFailure: true });
    }
    for (const ip of anchors) await run.run('ip', ['address', 'del', `${ip}/${hostPrefix(ip)}`, 'dev', 'lo'], { allowFailure: true });
    this.#anchors = [];
    this.#hostAddresses = [];
  }

  /** The main VICI connection broke: charon died (or was restarted). Restart it unless told not to. */
  #onViciClosed(v: ViciClient, why: IsthmusError): void {
    if (this.#vici !== v) return; // replaced or closed on purpose
    this.#vici = undefined;
    this.#log.warn({ err: why.message }, 'lost the connection to charon');
    if (this.#o.autoRestart === false) return;
    this.#scheduleRestart(this.#o.autoRestartDelayMs ?? 1_000);
  }

  #scheduleRestart(delayMs: number): void {
    if (this.#restartTimer !== undefined) return;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#local === undefined) return;
      this.#ensureCharon(false).then(
        () => this.#log.info('charon restarted and reconfigured after it went away'),
        (err: unknown) => {
          this.#log.error({ err: messageOf(err) }, 'could not restart charon; retrying');
          this.#scheduleRestart(Math.min(30_000, delayMs * 2));
        },
      );
    }, delayMs);
    this.#restartTimer.unref();
  }

  readonly #onIkeUpdown: EventHandler = (_name, msg) => {
    const up = yes(msg['up']);
    if (up) this.ikeUps++;
    for (const conn of Object.keys(msg).filter((k) => k.startsWith(NAME_PREFIX))) {
      if (up) this.#lastError.delete(conn.slice(NAME_PREFIX.length));
      this.#log.info({ conn, up }, up ? 'IKE_SA up' : 'IKE_SA down');
    }
  };

  readonly #onIkeRekey: EventHandler = (_name, msg) => {
    this.ikeRekeys++;
    for (const conn of Object.keys(msg).filter((k) => k.startsWith(NAME_PREFIX))) this.#log.info({ conn }, 'IKE_SA rekeyed');
  };

  readonly #onChildUpdown: EventHandler = (_name, msg) => {
    for (const conn of Object.keys(msg).filter((k) => k.startsWith(NAME_PREFIX))) this.#log.info({ conn, up: yes(msg['up']) }, 'CHILD_SA updown');
  };

  #need(): { local: LocalEndpoint; auth: IpsecAuth; charon: Charon } {
    if (this.#local === undefined || this.#auth === undefined || this.#charon === undefined) {
      throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, 'the ipsec driver is not initialised: call init() first');
    }
    return { local: this.#local, auth: this.#auth, charon: this.#charon };
  }

  async #loadCredentials(vici: ViciClient): Promise<void> {
    const { local, auth } = this.#need();
    const s = local.secrets;
    if (auth.mode === 'pubkey') {
      const keyPem = s['keyPem'] ?? '';
      const keyType = keyPem.includes('BEGIN RSA PRIVATE KEY') ? 'rsa' : keyPem.includes('BEGIN EC PRIVATE KEY') ? 'ecdsa' : 'any';
      try {
        // the CA may be a bundle (old and new CA during a rotation): load every certificate in it
        for (const ca of pemBlocks(s['caPem'] ?? '')) await vici.request('load-cert', { type: 'X509', flag: 'CA', data: ca });
        await vici.request('load-cert', { type: 'X509', flag: 'NONE', data: s['certPem'] ?? '' });
        await vici.request('load-key', { type: keyType, data: keyPem });
      } catch (err) {
        // charon's errmsg names the credential kind, never its content
        throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `charon refused the ipsec credentials: ${messageOf(err)}`, { cause: err });
      }
    } else {
      try {
        await vici.request('load-shared', { id: 'isthmus-psk', type: 'IKE', data: Buffer.from(s['psk'] ?? '', 'utf8'), owners: [] });
      } catch (err) {
        throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `charon refused the ipsec PSK: ${messageOf(err)}`, { cause: err });
      }
    }
  }

  async #loadConn(vici: ViciClient, spec: CableSpec): Promise<void> {
    const { local, auth } = this.#need();
    await vici.request('load-conn', connConfig(local, auth, spec, this.#timings));
  }

  async #viciNow(): Promise<ViciClient> {
    await this.#ensureCharon(false);
    const v = this.#vici;
    if (v === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, 'no VICI connection after starting charon');
    return v;
  }

  async set(desired: readonly CableSpec[]): Promise<SetResult> {
    const { local } = this.#need();
    const vici = await this.#viciNow();
    await this.#syncAnchors();
    const failed: { remoteCluster: string; reason: string }[] = [];
    const want = new Map<string, CableSpec>();
    for (const spec of desired) {
      const problem = want.has(spec.remoteCluster) ? `duplicate cable for ${spec.remoteCluster}` : specProblem(local, spec);
      if (problem !== undefined) {
        failed.push({ remoteCluster: spec.remoteCluster, reason: problem });
        this.#failed.set(spec.remoteCluster, { spec, reason: problem });
        continue;
      }
      want.set(spec.remoteCluster, spec);
    }
    let changed = false;
    // add and update first
    for (const [remote, spec] of want) {
      const key = specKey(spec);
      const have = this.#applied.get(remote);
      if (have !== undefined && have.key === key) {
        this.#failed.delete(remote);
        continue;
      }
      try {
        await this.#loadConn(vici, spec);
        if (have !== undefined) {
          await this.#abandon(remote);
          await this.#terminate(vici, remote);
        }
        this.#applied.set(remote, { spec, key });
        this.#failed.delete(remote);
        this.#lastError.delete(remote);
        changed = true;
        this.#startSupervisor();
        this.#log.info({ remote, remoteIp: spec.remoteIp, natTraversal: spec.natTraversal }, have === undefined ? 'ipsec cable added' : 'ipsec cable updated');
      } catch (err) {
        const reason = messageOf(err);
        failed.push({ remoteCluster: remote, reason });
        this.#failed.set(remote, { spec, reason });
        this.#log.warn({ remote, reason }, 'ipsec cable failed');
      }
    }
    // then delete; a cable whose new spec was refused keeps running on its previous one
    const named = new Set(desired.map((d) => d.remoteCluster));
    for (const remote of [...this.#applied.keys()]) {
      if (named.has(remote)) continue;
      await this.#remove(vici, remote);
      changed = true;
    }
    for (const remote of [...this.#failed.keys()]) {
      if (!desired.some((d) => d.remoteCluster === remote)) this.#failed.delete(remote);
    }
    if (changed) await this.#writeState();
    // the routes last: new cables' routes in, removed cables' routes out
    for (const [remote, reason] of await this.#syncRoutes()) {
      if (!failed.some((f) => f.remoteCluster === remote)) failed.push({ remoteCluster: remote, reason });
    }
    return { failed };
  }

  async #remove(vici: ViciClient, remote: string): Promise<void> {
    // out of #applied first: the supervisor must not initiate it again once terminated
    this.#applied.delete(remote);
    await this.#abandon(remote);
    this.#watches.delete(remote);
    await this.#terminate(vici, remote);
    try {
      await vici.request('unload-conn', { name: connName(remote) });
    } catch (err) {
      this.#log.warn({ remote, err: messageOf(err) }, 'unload-conn failed');
    }
    this.#lastError.delete(remote);
    this.#log.info({ remote }, 'ipsec cable removed');
  }

  async #terminate(vici: ViciClient, remote: string): Promise<void> {
    const { sas } = await this.#listSas(vici, connName(remote));
    if ((sas.get(connName(remote)) ?? []).length === 0) return;
    // by force: the SA goes at once (one DELETE is sent) instead of waiting for the peer's answer,
    // which never comes when it died; until the old SA is gone nothing initiates the new one
    await vici.request('terminate', { ike: connName(remote), force: 'yes' }).catch((err: unknown) => {
      this.#log.debug({ remote, err: messageOf(err) }, 'terminate');
    });
  }

  async #listSas(vici: ViciClient, ike?: string): Promise<{ sas: Map<string, SaView[]> }> {
    const { events } = await vici.stream('list-sas', 'list-sa', ike === undefined ? { noblock: 'yes' } : { noblock: 'yes', ike });
    return { sas: parseListSas(events) };
  }

  #startSupervisor(): void {
    if (this.#supervisor === undefined) {
      const abort = new AbortController();
      const done = this.#supervise(abort.signal).catch((err: unknown) => {
        this.#log.error({ err: messageOf(err) }, 'ipsec supervisor stopped');
      });
      this.#supervisor = { abort, done };
    }
    this.#wake?.();
  }

  async #stopSupervisor(): Promise<void> {
    const sup = this.#supervisor;
    this.#supervisor = undefined;
    if (sup !== undefined) {
      sup.abort.abort();
      await sup.done;
    }
    await Promise.all([...this.#watches.keys()].map((r) => this.#abandon(r)));
    this.#watches.clear();
  }

  /** Abandons the cable's initiation in flight (charon's own attempt is terminated by the caller). */
  async #abandon(remote: string): Promise<void> {
    const w = this.#watches.get(remote);
    if (w === undefined) return;
    w.abort?.abort();
    await w.inFlight;
    w.noSaSince = undefined;
    w.nextTryAt = 0;
    w.delay = this.#o.retryMinMs ?? 1_000;
  }

  /**
   * One loop for all cables: every second (and at once after set() changed something) it
   * lists the SAs once; a cable without an IKE_SA is initiated by the initiator (lower
   * cluster id) at once, with backoff after failures; the responder waits a grace period
   * and then initiates too (the initiator may sit behind a NAT the responder cannot reach
   * into), or at once after its charon restarted.
   */
  async #supervise(signal: AbortSignal): Promise<void> {
    const min = this.#o.retryMinMs ?? 1_000;
    const max = this.#o.retryMaxMs ?? 10_000;
    while (!signal.aborted) {
      const main = this.#vici;
      const local = this.#local;
      let sas: Map<string, SaView[]> | undefined;
      if (main !== undefined && !main.closed && local !== undefined) {
        try {
          sas = (await this.#listSas(main)).sas;
        } catch {
          sas = undefined;
        }
      }
      if (signal.aborted) break;
      const now = Date.now();
      for (const [remote, a] of sas === undefined ? [] : this.#applied) {
        if (local === undefined) break;
        let w = this.#watches.get(remote);
        if (w === undefined) {
          w = { noSaSince: undefined, nextTryAt: 0, delay: min, inFlight: undefined, abort: undefined };
          this.#watches.set(remote, w);
        }
        if (w.inFlight !== undefined) continue;
        if ((sas?.get(connName(remote)) ?? []).length > 0) {
          w.noSaSince = undefined;
          w.delay = min;
          this.#initiateNow.delete(remote);
          continue;
        }
        w.noSaSince ??= now;
        const grace = a.spec.natTraversal ? (this.#o.responderGraceNatMs ?? 3_000) : (this.#o.responderGraceMs ?? 15_000);
        const initiator = isInitiator(local.clusterId, remote) || this.#initiateNow.has(remote);
        if ((!initiator && now - w.noSaSince < grace) || now < w.nextTryAt) continue;
        this.#initiateNow.delete(remote);
        const watch = w;
        const abort = new AbortController();
        watch.abort = abort;
        watch.inFlight = this.#initiate(remote, a.spec, abort.signal).then((ok) => {
          watch.inFlight = undefined;
          watch.abort = undefined;
          if (ok) {
            watch.delay = min;
            watch.nextTryAt = 0;
          } else if (!abort.signal.aborted) {
            watch.nextTryAt = Date.now() + watch.delay;
            watch.delay = Math.min(max, watch.delay * 2);
            this.#wakeAt(watch.nextTryAt);
          }
        });
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          if (this.#wake === done) this.#wake = undefined;
          resolve();
        };
        const t = setTimeout(done, 1_000);
        t.unref();
        this.#wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** Wakes the supervisor at `at` (for a retry due before its next tick). */
  #wakeAt(at: number): void {
    const t = setTimeout(() => this.#wake?.(), Math.max(0, at - Date.now()));
    t.unref();
  }

  /** One initiation on a connection of its own (charon streams its control log to it); false when it failed. */
  async #initiate(remote: string, spec: CableSpec, signal: AbortSignal): Promise<boolean> {
    const timeout = this.#o.initiateTimeoutMs ?? 20_000;
    let vici: ViciClient | undefined;
    const lines: string[] = [];
    try {
      vici = await this.#need().charon.connect({ logger: this.#log, keepAlive: false, timeoutMs: timeout + 5_000 });
      const conn = vici;
      signal.addEventListener('abort', () => conn.close(), { once: true });
      if (signal.aborted) return false;
      await vici.on('control-log', (_n, m) => {
        const msg = str(m['msg']);
        if (msg !== undefined && Number(str(m['level']) ?? 9) <= 1) lines.push(msg);
      });
      await vici.request('initiate', { child: childName(remote), ike: connName(remote), timeout: String(timeout), loglevel: '1' });
      this.#lastError.delete(remote);
      return true;
    } catch (err) {
      if (signal.aborted) return false;
      const reason = failureReason(lines, messageOf(err));
      this.#lastError.set(remote, `initiating to ${spec.remoteIp}:${spec.remotePort} failed: ${reason}`);
      this.#log.warn({ remote, reason }, 'ipsec initiation failed');
      return false;
    } finally {
      vici?.close();
    }
  }

  async connections(): Promise<readonly CableStatus[]> {
    const { local } = this.#need();
    const out: CableStatus[] = [];
    let sas: Map<string, SaView[]> | undefined;
    let down: string | undefined;
    try {
      const v = this.#vici;
      if (v === undefined || v.closed) throw new IsthmusError(ErrorCodes.UNAVAILABLE, 'charon is not running (init() or set() restarts it)');
      sas = (await this.#listSas(v)).sas;
    } catch (err) {
      down = messageOf(err);
    }
    const now = Date.now();
    for (const [remote, a] of this.#applied) {
      if (sas === undefined) {
        out.push({ remoteCluster: remote, remoteIp: a.spec.remoteIp, state: 'error', message: down ?? 'charon is not running' });
        continue;
      }
      const refused = this.#failed.get(remote);
      const st0 = cableStatus(a.spec, sas.get(connName(remote)) ?? [], { initiator: isInitiator(local.clusterId, remote), lastError: this.#lastError.get(remote), nowMs: now });
      const st: CableStatus = refused === undefined ? st0 : { ...st0, state: 'error', message: `the new spec was refused (${refused.reason}); the previous one is still ${st0.state}` };
      const id = (sas.get(connName(remote)) ?? []).find((s) => s.ikeState === 'ESTABLISHED')?.uniqueId;
      if (st.establishedAt !== undefined && id !== undefined) {
        const first = this.#establishedAt.get(id) ?? st.establishedAt;
        this.#establishedAt.set(id, first);
        out.push({ ...st, establishedAt: first });
      } else {
        out.push(st);
      }
    }
    for (const [remote, f] of this.#failed) {
      if (!this.#applied.has(remote)) out.push({ remoteCluster: remote, remoteIp: f.spec.remoteIp, state: 'error', message: f.reason });
    }
    return out.sort((x, y) => x.remoteCluster.localeCompare(y.remoteCluster));
  }

  /** The IKE_SA unique ids per cable, as charon reports them (to count SA re-creations). */
  async ikeSaIds(): Promise<Map<string, string[]>> {
    const v = await this.#viciNow();
    const { sas } = await this.#listSas(v);
    const out = new Map<string, string[]>();
    for (const [name, list] of sas) {
      if (name.startsWith(NAME_PREFIX)) out.set(name.slice(NAME_PREFIX.length), list.map((s) => s.uniqueId));
    }
    return out;
  }

  /** Stops the initiator loops and closes the VICI connection; charon and its SAs stay (a restart adopts them). */
  async close(): Promise<void> {
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    await this.#stopSupervisor();
    const v = this.#vici;
    this.#vici = undefined;
    v?.close();
  }

  async cleanup(): Promise<void> {
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    await this.#stopSupervisor();
    const charon = this.#charon ?? new Charon({ runner: this.#o.runner, logger: this.#log, dir: this.#o.dir });
    // anchors a previous instance made are in the state file, which goes with charon's folder
    const saved: unknown = await readFile(this.stateFile, 'utf8').then((t) => (JSON.parse(t) as Partial<StateFile>).anchors).catch(() => undefined);
    const anchors = [...new Set([...this.#anchors, ...(Array.isArray(saved) ? saved.filter((x): x is string => typeof x === 'string') : [])])];
    if ((await charon.pid()) !== undefined) {
      try {
        const main = this.#vici !== undefined && !this.#vici.closed ? this.#vici : undefined;
        const v = main ?? (await charon.connect({ logger: this.#log, timeoutMs: 5_000, keepAlive: false }));
        try {
          for (const remote of [...this.#applied.keys()]) await this.#remove(v, remote);
          await v.request('clear-creds').catch(() => undefined);
        } finally {
          if (v !== main) v.close();
        }
      } catch (err) {
        this.#log.warn({ err: messageOf(err) }, 'could not unload the ipsec cables before stopping charon');
      }
    }
    const v = this.#vici;
    this.#vici = undefined;
    v?.close();
    await charon.remove();
    await this.#removeHostState(anchors);
    this.#applied.clear();
    this.#failed.clear();
    this.#lastError.clear();
    this.#loadedCreds = undefined;
  }
}

