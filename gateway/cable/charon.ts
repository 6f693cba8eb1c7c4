import { mkdir, readFile, readdir, readlink, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, IsthmusError, messageOf, missingDependency, type CommandRunner, type Logger } from '../../core/index.ts';
import { ViciClient } from './vici.ts';

/**
 * One strongSwan `charon` per gateway, with everything private to it in one folder:
 *
 *   <dir>/strongswan.conf   its configuration (passed through STRONGSWAN_CONF)
 *   <dir>/charon.vici       its VICI socket
 *   <dir>/charon.pid        its pid file
 *   <dir>/charon.log        its log (IKE level 1), <dir>/charon.out its stdout/stderr
 *
 * charon writes its pid file to the compiled-in /var/run/charon.pid (there is no option
 * for it), so several charons on one machine (one per network namespace) would refuse to
 * start. charon is therefore started in a private mount namespace (`unshare --mount`)
 * in which `<dir>` is bind-mounted over /run: its /var/run/charon.pid is
 * `<dir>/charon.pid` for everyone else. The command runs through the CommandRunner, so
 * a NetnsRunner puts charon into the gateway's network namespace.
 *
 * Data path: the kernel's XFRM (kernel-netlink installs SAs and policies) when the
 * kernel takes an ESP state, probed by adding and deleting a dummy ESP SA in a scratch
 * network namespace; otherwise strongSwan's userspace kernel-libipsec (a TUN device
 * `ipsec0`, routes in table 220, ESP always in UDP on the NAT-T port).
 */

export const CHARON_PATH = '/usr/lib/ipsec/charon';

export type DataPath = 'xfrm' | 'libipsec';

export interface CharonOptions {
  readonly runner: CommandRunner;
  readonly logger: Logger;
  /** The private folder (created). Its path must leave room for the socket name (Unix sockets: 107 bytes). */
  readonly dir: string;
  /** IKE port (default 500) and NAT-T port (default 4500; must differ from `port`). */
  readonly port?: number;
  readonly portNatT?: number;
  /** Data path; 'auto' (default) probes the kernel. */
  readonly dataPath?: DataPath | 'auto';
  /** The charon binary (default /usr/lib/ipsec/charon, Debian package strongswan-charon). */
  readonly charonPath?: string;
  /** How long to wait for the VICI socket after starting (default 15 000 ms). */
  readonly startTimeoutMs?: number;
}

/** Where Debian's strongSwan keeps its plugins (libstrongswan-NAME.so). */
export const PLUGIN_DIR = '/usr/lib/ipsec/plugins';

/**
 * The plugins charon loads for the driver, each with the Debian package that ships it.
 * openssl gives the RSA public keys of the certificates, x25519/MODP, AES-GCM and
 * SHA-2; gcm the AEAD mode over `aes`; x509, pem, pkcs1/8 and pubkey parse the
 * credentials. Without libstrongswan-standard-plugins (left out by
 * `--no-install-recommends`) charon starts anyway and every certificate fails to parse.
 */
export const PLUGIN_PACKAGE: Readonly<Record<string, string>> = {
  random: 'libstrongswan', nonce: 'libstrongswan', openssl: 'libstrongswan-standard-plugins', aes: 'libstrongswan',
  sha1: 'libstrongswan', sha2: 'libstrongswan', hmac: 'libstrongswan', kdf: 'libstrongswan', gcm: 'libstrongswan-standard-plugins',
  pem: 'libstrongswan', pkcs1: 'libstrongswan', pkcs8: 'libstrongswan', x509: 'libstrongswan', pubkey: 'libstrongswan',
  constraints: 'libstrongswan', 'kernel-netlink': 'libstrongswan', 'socket-default': 'strongswan-libcharon', vici: 'strongswan-swanctl',
  'kernel-libipsec': 'libcharon-extra-plugins',
};

const PLUGINS_COMMON = [
  'random', 'nonce', 'openssl', 'aes', 'sha1', 'sha2', 'hmac', 'kdf', 'gcm',
  'pem', 'pkcs1', 'pkcs8', 'x509', 'pubkey', 'constraints', 'kernel-netlink', 'socket-default', 'vici',
];

/** The plugins charon must load for a data path (pure; the `load` line of its strongswan.conf). */
export function charonPlugins(dataPath: DataPath): readonly string[] {
  return dataPath === 'libipsec' ? ['kernel-libipsec', ...PLUGINS_COMMON] : PLUGINS_COMMON;
}

/**
 * MISSING_DEPENDENCY for the plugins of `needed` that are not in `present` (pure; undefined
 * when none is missing). `how` says whether they are not installed (no file) or were not
 * loaded by a running charon; the message names the Debian packages to install.
 */
export function missingPluginsError(needed: readonly string[], present: Iterable<string>, how: 'installed' | 'loaded', dir = PLUGIN_DIR): IsthmusError | undefined {
  const have = new Set(present);
  const missing = needed.filter((p) => !have.has(p));
  if (missing.length === 0) return undefined;
  const packages = [...new Set(missing.map((p) => PLUGIN_PACKAGE[p] ?? 'strongswan'))].sort();
  const what = how === 'installed' ? `are not installed in ${dir}` : 'did not load in charon (see its log)';
  return new IsthmusError(ErrorCodes.MISSING_DEPENDENCY,
    `the strongSwan plugin${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that the IPsec driver needs ${what}: install the Debian package${packages.length > 1 ? 's' : ''} ${packages.join(' ')} (./setup does; apt-get install ${packages.join(' ')})`,
    { context: { plugins: missing, packages } });
}

/** The plugin names with a libstrongswan-NAME.so in `dir` (empty when the folder is missing). */
export async function installedPlugins(dir: string): Promise<string[]> {
  const files = await readdir(dir).catch(() => [] as string[]);
  return files.map((f) => /^libstrongswan-(.+)\.so$/.exec(f)?.[1]).filter((n): n is string => n !== undefined);
}

/** The strongswan.conf for one charon (pure). */
export function charonConf(o: { dir: string; port: number; portNatT: number; dataPath: DataPath }): string {
  const plugins = charonPlugins(o.dataPath);
  return `# written by isthmus (gateway/cable/charon.ts); rewritten on every start
charon {
  load = ${plugins.join(' ')}
  port = ${o.port}
  port_nat_t = ${o.portNatT}
  install_routes = yes
  routing_table = 220
  routing_table_prio = 220
  # fail fast on an unreachable peer (about 10 s instead of about 2 minutes)
  retransmit_tries = 4
  retransmit_timeout = 1.0
  retransmit_base = 1.4
  filelog {
    isthmus {
      path = ${join(o.dir, 'charon.log')}
      time_format = %F %T
      default = 1
      append = yes
      flush_line = yes
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
  plugins {
    vici {
      socket = unix://${join(o.dir, 'charon.vici')}
    }
  }
}
`;
}

let probed: Promise<DataPath> | undefined;

/** XFRM when the kernel accepts an ESP SA (probed once per process in a scratch namespace), else libipsec. */
export function probeDataPath(runner: CommandRunner): Promise<DataPath> {
  probed ??= (async (): Promise<DataPath> => {
    const ns = `ist-xfrm-probe-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    await runner.run('ip', ['netns', 'add', ns]);
    try {
      const r = await runner.run('ip', [
        'xfrm', 'state', 'add', 'src', '192.0.2.1', 'dst', '192.0.2.2', 'proto', 'esp', 'spi', '0x1000', 'mode', 'tunnel',
        'aead', 'rfc4106(gcm(aes))', `0x${'00'.repeat(20)}`, '128',
      ], { netns: ns, allowFailure: true });
      return r.code === 0 ? 'xfrm' : 'libipsec';
    } finally {
      await runner.run('ip', ['netns', 'del', ns], { allowFailure: true });
    }
  })();
  return probed;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

export class Charon {
  readonly dir: string;
  readonly socketPath: string;
  readonly pidFile: string;
  readonly confFile: string;
  readonly logFile: string;
  readonly #o: CharonOptions;
  #dataPath: DataPath | undefined;

  constructor(options: CharonOptions) {
    this.#o = options;
    this.dir = options.dir;
    this.socketPath = join(options.dir, 'charon.vici');
    this.pidFile = join(options.dir, 'charon.pid');
    this.confFile = join(options.dir, 'strongswan.conf');
    this.logFile = join(options.dir, 'charon.log');
    if (Buffer.byteLength(this.socketPath) > 107) {
      throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `charon folder ${options.dir} is too long for a Unix socket path: choose a shorter one`);
    }
    const port = options.port ?? 500;
    const natt = options.portNatT ?? 4500;
    if (port === natt) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `IKE port and NAT-T port are both ${port}: they must differ`);
  }

  /** The data path chosen at the last start or adoption. */
  get dataPath(): DataPath | undefined {
    return this.#dataPath;
  }

  /** The pid of the running charon of this folder, or undefined. */
  async pid(): Promise<number | undefined> {
    let text: string;
    try {
      text = await readFile(this.pidFile, 'utf8');
    } catch {
      return undefined;
    }
    const pid = Number.parseInt(text.trim(), 10);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      const comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
      const state = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.[0];
      return comm === 'charon' && state !== 'Z' ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Makes sure this folder's charon runs: adopts a running one (its pid file names a
   * live charon and its socket answers), else (re)starts it. Returns whether it started one.
   */
  async ensure(): Promise<{ started: boolean; pid: number }> {
    const pid = await this.pid();
    if (pid !== undefined) {
      await this.#checkNetns(pid);
      const conf = await readFile(this.confFile, 'utf8').catch(() => '');
      this.#dataPath = conf.includes('kernel-libipsec') ? 'libipsec' : 'xfrm';
      try {
        const c = await ViciClient.connect(this.socketPath, { timeoutMs: 5_000 });
        try {
          await c.request('version');
        } finally {
          c.close();
        }
        this.#o.logger.info({ pid, dir: this.dir }, 'adopted running charon');
        return { started: false, pid };
      } catch (err) {
        this.#o.logger.warn({ pid, err: messageOf(err) }, 'charon runs but its VICI socket does not answer: restarting it');
        await this.stop();
      }
    }
    return { started: true, pid: await this.#start() };
  }

  /** Refuses to adopt a charon of this folder that runs in another network namespace. */
  async #checkNetns(pid: number): Promise<void> {
    const theirs = await readlink(`/proc/${pid}/ns/net`).catch(() => '');
    const mine = (await this.#o.runner.run('readlink', ['/proc/self/ns/net'], { allowFailure: true })).stdout.trim();
    if (theirs !== '' && mine !== '' && theirs !== mine) {
      throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `the charon of ${this.dir} (pid ${pid}) runs in another network namespace: give each gateway its own state folder`, { context: { pid, dir: this.dir } });
    }
  }

  async #start(): Promise<number> {
    const o = this.#o;
    const charonPath = o.charonPath ?? CHARON_PATH;
    if (!(await exists(charonPath))) throw missingDependency('charon');
    const dataPath = o.dataPath === undefined || o.dataPath === 'auto' ? await probeDataPath(o.runner) : o.dataPath;
    this.#dataPath = dataPath;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await rm(this.pidFile, { force: true });
    await rm(this.socketPath, { force: true });
    // keep the log bounded across restarts: past 10 MiB it becomes charon.log.1
    if ((await stat(this.logFile).then((st) => st.size, () => 0)) > 10 * 2 ** 20) await rename(this.logFile, `${this.logFile}.1`);
    const logStart = await stat(this.logFile).then((st) => st.size, () => 0);
    await writeFile(this.confFile, charonConf({ dir: this.dir, port: o.port ?? 500, portNatT: o.portNatT ?? 4500, dataPath }), { mode: 0o600 });
    const out = join(this.dir, 'charon.out');
    // private mount namespace: <dir> over /run, so /var/run/charon.pid is ours; detached (setsid) and backgrounded
    const script = 'mount --bind "$1" /run && exec "$2"';
    await o.runner.run('sh', [
      '-c', 'setsid unshare --mount --propagation private sh -c "$0" sh "$1" "$2" </dev/null >>"$3" 2>&1 &',
      script, this.dir, charonPath, out,
    ], { env: { STRONGSWAN_CONF: this.confFile } });
    const deadline = Date.now() + (o.startTimeoutMs ?? 15_000);
    let last = 'no pid file yet';
    while (Date.now() < deadline) {
      const pid = await this.pid();
      if (pid !== undefined && (await exists(this.socketPath))) {
        let answered = false;
        try {
          (await ViciClient.connect(this.socketPath, { timeoutMs: 5_000 })).close();
          answered = true;
        } catch (err) {
          last = messageOf(err);
        }
        if (answered) {
          const log = (await readFile(this.logFile).catch(() => Buffer.alloc(0))).subarray(logStart).toString('utf8');
          if (/unable to bind socket: Address already in use/.test(log)) {
            await this.stop();
            throw new IsthmusError(ErrorCodes.PORT_IN_USE, `UDP port ${o.port ?? 500} or ${o.portNatT ?? 4500} is already in use in this network namespace (another IKE daemon?): stop it or choose other ports`, { context: { port: o.port ?? 500, portNatT: o.portNatT ?? 4500 } });
          }
          const missing = missingPluginsError(charonPlugins(dataPath), await this.loadedPlugins(), 'loaded');
          if (missing !== undefined) {
            await this.stop();
            throw missing;
          }
          o.logger.info({ pid, dir: this.dir, dataPath }, 'started charon');
          return pid;
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const tail = (await readFile(out, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join(' | ');
    throw new IsthmusError(ErrorCodes.TIMEOUT, `charon did not open its VICI socket ${this.socketPath} within ${o.startTimeoutMs ?? 15_000} ms (${last}); its output: ${tail || 'none'}; see ${this.logFile}`);
  }

  /** The plugins the running charon loaded (VICI `stats`). */
  async loadedPlugins(): Promise<string[]> {
    const c = await ViciClient.connect(this.socketPath, { timeoutMs: 5_000 });
    try {
      const plugins = (await c.request('stats'))['plugins'];
      return Array.isArray(plugins) ? plugins.filter((p): p is string => typeof p === 'string') : [];
    } finally {
      c.close();
    }
  }

  /** A new VICI connection to this charon. */
  connect(options: { timeoutMs?: number; logger?: Logger; keepAlive?: boolean } = {}): Promise<ViciClient> {
    return ViciClient.connect(this.socketPath, options);
  }

  /** Stops charon (SIGTERM, then SIGKILL after 5 s) and waits until it is gone. */
  async stop(): Promise<void> {
    const pid = await this.pid();
    if (pid === undefined) return;
    const gone = async (): Promise<boolean> => {
      try {
        const st = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.[0];
        return st === 'Z';
      } catch {
        return true;
      }
    };
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      if (await gone()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    while (!(await gone())) await new Promise((r) => setTimeout(r, 50));
  }

  /** Stops charon and removes its folder. */
  async remove(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
