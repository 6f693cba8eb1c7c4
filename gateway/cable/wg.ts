import { ErrorCodes, IsthmusError, missingDependency, parseIp, type CommandRunner, type RunResult } from '../../core/index.ts';

/**
 * A typed wrapper over wireguard-tools `wg` (and the `wireguard-go` daemon) through a
 * CommandRunner. Works the same for the kernel device and for wireguard-go: `wg` talks
 * netlink to the first and the UAPI socket `/var/run/wireguard/DEV.sock` to the second.
 *
 * Secrets: a private key only ever travels on stdin (`wg set DEV private-key /dev/stdin`,
 * `wg syncconf DEV /dev/stdin`), never on a command line; `showDump` drops the private
 * and preshared keys that `wg show DEV dump` prints, and errors quote stderr only.
 *
 * `socketDir`: wireguard-go's UAPI socket path depends only on the device name, so two
 * gateways that share one filesystem (sandbox nodes, test namespaces) would fight over
 * `/var/run/wireguard/isthmus-wg.sock`. With `socketDir` set, every `wg` and
 * `wireguard-go` command runs in a private mount namespace (`unshare -m`) in which that
 * directory is bind-mounted on /var/run/wireguard. That needs CAP_SYS_ADMIN besides
 * CAP_NET_ADMIN (NOT_ROOT otherwise): leave it unset on a real gateway node.
 */
export interface WgInterface {
  /** The device's public key; undefined before a private key is set. */
  readonly publicKey: string | undefined;
  readonly listenPort: number;
  readonly fwmark: number | undefined;
}

export interface WgPeer {
  readonly publicKey: string;
  readonly hasPresharedKey: boolean;
  /** "ip:port" or "[ipv6]:port" as the device last saw or was told it; undefined when none. */
  readonly endpoint: string | undefined;
  readonly allowedIps: readonly string[];
  /** Latest handshake, ms since the epoch; undefined when there was none. */
  readonly latestHandshake: number | undefined;
  readonly rxBytes: number;
  readonly txBytes: number;
  /** Seconds; undefined when off. */
  readonly persistentKeepalive: number | undefined;
}

export interface WgDump {
  readonly interface: WgInterface;
  readonly peers: readonly WgPeer[];
}

export interface WgPeerConfig {
  readonly publicKey: string;
  readonly endpoint?: { readonly ip: string; readonly port: number };
  readonly allowedIps: readonly string[];
  /** Seconds; 0 or undefined turns it off. */
  readonly persistentKeepalive?: number;
}

export interface WgConfig {
  readonly privateKey: string;
  readonly listenPort: number;
  readonly peers: readonly WgPeerConfig[];
}

export interface WgOptions {
  /** See the file comment; unset on a real node. */
  readonly socketDir?: string;
}

const none = (s: string | undefined): string | undefined => (s === undefined || s === '(none)' || s === '' ? undefined : s);

function int(s: string | undefined, what: string): number {
  const n = Number(s);
  if (s === undefined || !/^[0-9]+$/.test(s) || !Number.isSafeInteger(n)) {
    throw new IsthmusError(ErrorCodes.INTERNAL, `wg show dump: ${what} is not a number`);
  }
  return n;
}

/** Parses the output of `wg show DEV dump` (tab-separated; first line the interface, then one line per peer). */
export function parseDump(text: string): WgDump {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const head = lines[0]?.split('\t');
  if (head?.length !== 4) throw new IsthmusError(ErrorCodes.INTERNAL, 'wg show dump: the interface line does not have 4 fields');
  // head[0] is the private key: deliberately not kept.
  const fwmark = head[3] === 'off' ? undefined : Number(head[3]);
  const iface: WgInterface = { publicKey: none(head[1]), listenPort: int(head[2], 'listen port'), fwmark: Number.isFinite(fwmark) ? fwmark : undefined };
  const peers = lines.slice(1).map((line): WgPeer => {
    const f = line.split('\t');
    if (f.length !== 8) throw new IsthmusError(ErrorCodes.INTERNAL, 'wg show dump: a peer line does not have 8 fields');
    const allowed = none(f[3]);
    const handshake = int(f[4], 'latest handshake');
    const keepalive = f[7] === 'off' ? 0 : int(f[7], 'persistent keepalive');
    return {
      publicKey: f[0] ?? '',
      hasPresharedKey: none(f[1]) !== undefined,
      endpoint: none(f[2]),
      allowedIps: allowed === undefined ? [] : allowed.split(','),
      latestHandshake: handshake === 0 ? undefined : handshake * 1000,
      rxBytes: int(f[5], 'rx bytes'),
      txBytes: int(f[6], 'tx bytes'),
      persistentKeepalive: keepalive === 0 ? undefined : keepalive,
    };
  });
  return { interface: iface, peers };
}

/** "ip:port", with brackets around IPv6 (the form wg prints and takes). */
export function formatEndpoint(ip: string, port: number): string {
  return parseIp(ip).family === 6 ? `[${ip}]:${String(port)}` : `${ip}:${String(port)}`;
}

/** The `wg set` arguments for one peer (without the leading `set DEV`). */
export function peerArgs(peer: WgPeerConfig): string[] {
  const args = ['peer', peer.publicKey];
  if (peer.endpoint !== undefined) args.push('endpoint', formatEndpoint(peer.endpoint.ip, peer.endpoint.port));
  args.push('persistent-keepalive', peer.persistentKeepalive === undefined || peer.persistentKeepalive === 0 ? 'off' : String(peer.persistentKeepalive));
  args.push('allowed-ips', peer.allowedIps.join(','));
  return args;
}

/** The wg-quick-free config text `wg syncconf`/`setconf` read. Holds the private key: only ever write it to stdin. */
export function configText(config: WgConfig): string {
  const out = ['[Interface]', `PrivateKey = ${config.privateKey}`, `ListenPort = ${String(config.listenPort)}`];
  for (const p of config.peers) {
    out.push('', '[Peer]', `PublicKey = ${p.publicKey}`);
    if (p.allowedIps.length > 0) out.push(`AllowedIPs = ${p.allowedIps.join(', ')}`);
    if (p.endpoint !== undefined) out.push(`Endpoint = ${formatEndpoint(p.endpoint.ip, p.endpoint.port)}`);
    if (p.persistentKeepalive !== undefined && p.persistentKeepalive > 0) out.push(`PersistentKeepalive = ${String(p.persistentKeepalive)}`);
  }
  return `${out.join('\n')}\n`;
}

// Runs "$@" with $1 bind-mounted on /var/run/wireguard, in a mount namespace of its own.
const BIND_SCRIPT = 'mkdir -p "$1" /var/run/wireguard && mount --bind "$1" /var/run/wireguard && shift && exec "$@"';

export class Wg {
  readonly #runner: CommandRunner;
  readonly #socketDir: string | undefined;

  constructor(runner: CommandRunner, options: WgOptions = {}) {
    this.#runner = runner;
    this.#socketDir = options.socketDir;
  }

  /**
   * Runs `program args` (wrapped for socketDir), always resolving with the result so that
   * failures are reported from stderr only (stdout of `wg show dump` holds the private key).
   */
  async #exec(program: string, args: readonly string[], input?: string, env?: Record<string, string>): Promise<RunResult> {
    // Node gives a child a socket, not a pipe, as stdin, and wg cannot fopen() a socket as
    // /dev/stdin: secrets go through `cat |` so that wg reads them from a real pipe.
    const line = input === undefined ? [program, ...args] : ['sh', '-c', `cat | ${program} "$@"`, program, ...args];
    const [cmd, argv] = this.#socketDir === undefined ? [line[0] ?? program, line.slice(1)] : ['unshare', ['-m', 'sh', '-c', BIND_SCRIPT, 'isthmus-wg-sock', this.#socketDir, ...line]];
    const r = await this.#runner.run(cmd, argv, { allowFailure: true, ...(input === undefined ? {} : { input }), ...(env === undefined ? {} : { env }) });
    // `ip netns exec` reports a failed exec on stderr; sh says "X: not found" and exits 127.
    const missing = /exec of "([^"]+)" failed: No such file/.exec(r.stderr) ?? /^[\w/.-]+: (?:\d+: )?([\w.-]+): (?:command )?not found\s*$/m.exec(r.stderr);
    if (missing?.[1] !== undefined) throw missingDependency(missing[1]);
    if (r.code === 127) throw missingDependency(program);
    if (this.#socketDir !== undefined && r.code !== 0 && /unshare failed|mount: .*(permission denied|must be superuser)|Operation not permitted/i.test(r.stderr) && !/Unable to access interface/.test(r.stderr)) {
      throw new IsthmusError(ErrorCodes.NOT_ROOT, `a private WireGuard socket directory (socketDir ${this.#socketDir}) needs a mount namespace, which needs CAP_SYS_ADMIN: ${r.stderr.trim()}; leave socketDir unset on a real gateway node (it is for several gateways sharing one filesystem)`);
    }
    return r;
  }

  #fail(what: string, r: RunResult): never {
    throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `${what} exited ${String(r.code)}: ${r.stderr.trim()}`, { context: { code: r.code, stderr: r.stderr.slice(0, 2000) } });
  }

  async #wg(args: readonly string[], input?: string): Promise<void> {
    const r = await this.#exec('wg', args, input);
    if (r.code !== 0) this.#fail(`wg ${args.join(' ')}`, r);
  }

  /**
   * The first line of `PROGRAM --version` (like "wireguard-go v0.0.20250522"); PROGRAM is
   * a wireguard-go binary (default `wireguard-go` on PATH). Throws MISSING_DEPENDENCY
   * when it is not installed.
   */
  async userspaceVersion(program = 'wireguard-go'): Promise<string> {
    const r = await this.#exec(program, ['--version']);
    if (r.code !== 0) this.#fail(`${program} --version`, r);
    return r.stdout.trim().split('\n')[0] ?? '';
  }

  /** `wg --version`: throws MISSING_DEPENDENCY when wireguard-tools is not installed. */
  async version(): Promise<string> {
    const r = await this.#exec('wg', ['--version']);
    if (r.code !== 0) this.#fail('wg --version', r);
    return r.stdout.trim();
  }

  /** The device's state, or undefined when there is no such WireGuard device (or its wireguard-go is gone). */
  async showDump(dev: string): Promise<WgDump | undefined> {
    const r = await this.#exec('wg', ['show', dev, 'dump']);
    if (r.code !== 0) {
      if (/Unable to access interface|No such device|Protocol not supported/.test(r.stderr)) return undefined;
      this.#fail(`wg show ${dev} dump`, r);
    }
    return parseDump(r.stdout);
  }

  /** Sets the private key from stdin: the key is on no command line and in no error. */
  async setPrivateKey(dev: string, privateKey: string): Promise<void> {
    await this.#wg(['set', dev, 'private-key', '/dev/stdin'], `${privateKey}\n`);
  }

  async setListenPort(dev: string, port: number): Promise<void> {
    await this.#wg(['set', dev, 'listen-port', String(port)]);
  }

  /** Adds the peer or replaces its endpoint, keepalive and whole allowed-ips list. */
  async setPeer(dev: string, peer: WgPeerConfig): Promise<void> {
    await this.#wg(['set', dev, ...peerArgs(peer)]);
  }

  async removePeer(dev: string, publicKey: string): Promise<void> {
    await this.#wg(['set', dev, 'peer', publicKey, 'remove']);
  }

  /**
   * Adds or replaces several peers in one `wg set` (one process, one UAPI/netlink
   * transaction). wg parses every argument before it changes anything, so a bad argument
   * changes nothing; callers retry peer by peer to find which one failed.
   */
  async setPeers(dev: string, peers: readonly WgPeerConfig[]): Promise<void> {
    if (peers.length === 0) return;
    await this.#wg(['set', dev, ...peers.flatMap((p) => peerArgs(p))]);
  }

  /** Removes several peers in one `wg set`. */
  async removePeers(dev: string, publicKeys: readonly string[]): Promise<void> {
    if (publicKeys.length === 0) return;
    await this.#wg(['set', dev, ...publicKeys.flatMap((k) => ['peer', k, 'remove'])]);
  }

  /** Makes the device exactly `config` (peers not in it are removed), config on stdin. */
  async syncconf(dev: string, config: WgConfig): Promise<void> {
    await this.#wg(['syncconf', dev, '/dev/stdin'], configText(config));
  }

  /** Removes the UAPI socket of `dev` (a wireguard-go still serving it exits). */
  async removeSocket(dev: string): Promise<void> {
    const r = await this.#exec('rm', ['-f', `/var/run/wireguard/${dev}.sock`]);
    if (r.code !== 0) this.#fail(`rm -f /var/run/wireguard/${dev}.sock`, r);
  }

  /**
   * Starts `PROGRAM DEV` (PROGRAM a wireguard-go binary, default `wireguard-go` on PATH; it
   * creates the TUN device, then detaches and the command returns). Throws
   * MISSING_DEPENDENCY when it is not installed.
   */
  async startUserspace(dev: string, program = 'wireguard-go'): Promise<void> {
    // The variable silences wireguard-go's "the kernel has WireGuard" banner on kernels where it does.
    const r = await this.#exec(program, [dev], undefined, { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' });
    if (r.code !== 0) this.#fail(`${program} ${dev}`, r);
  }
}
