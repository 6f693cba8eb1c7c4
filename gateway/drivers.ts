import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, IsthmusError, certificateInfo, wireguardKeyPair, wireguardPublicKeyOf, type CommandRunner, type Logger } from '../core/index.ts';
import type { CableDriver, CableDriverName } from './cable/driver.ts';
import { IpsecDriver } from './cable/ipsec.ts';
import { VxlanDriver } from './cable/vxlan.ts';
import { WireGuardDriver } from './cable/wireguard.ts';

/**
 * The cable drivers, registered explicitly, with what each needs from disk: its
 * secrets (handed to the driver only) and the public data the gateway publishes.
 * State lives under `stateDir` (the WireGuard key is kept there, 0600, so a restart
 * keeps the same public key).
 */
export interface DriverSetup {
  readonly driver: CableDriver;
  readonly secrets: Record<string, string>;
  readonly backend: Record<string, string>;
}

export interface DriverInputs {
  readonly name: CableDriverName;
  readonly runner: CommandRunner;
  readonly logger: Logger;
  readonly stateDir: string;
  /** Folder with tls.crt, tls.key, ca.crt (ipsec certificate mode). */
  readonly tlsDir?: string;
  /** The certificate and key in tlsDir are `<tlsName>.crt`/`.key` (default `tls`): one folder holds every gateway node's. */
  readonly tlsName?: string;
  /** File holding an IPsec PSK (PSK mode): refused unless `insecureSharedPsk`. */
  readonly pskFile?: string;
  /**
   * Accept PSK mode: one secret for every cluster, so any member holding it can
   * impersonate any other at IKE (issue 10 finding 6). Certificates are the default.
   */
  readonly insecureSharedPsk?: boolean;
  /**
   * WireGuard: keep wireguard-go's control socket in a private folder (needs
   * CAP_SYS_ADMIN for a private mount namespace). Only for several gateways on one
   * filesystem, as in the sandbox and tests; a real gateway pod leaves it off.
   */
  readonly privateSockets?: boolean;
}

/**
 * A file or folder this gateway made for a secret keeps `mode` when it already existed
 * (a restore, a copy or an older version may have widened it): group and other bits go.
 */
export function keepPrivate(path: string, logger: Logger, mode = 0o600): void {
  const now = statSync(path).mode & 0o777;
  if ((now & 0o077) === 0) return;
  chmodSync(path, mode);
  logger.warn({ path, was: now.toString(8), now: mode.toString(8) }, 'a secret was readable by others; its mode was narrowed');
}

function read(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `cannot read ${what} at ${path}: ${(err as Error).message}`);
  }
}

export const DRIVER_NAMES: readonly CableDriverName[] = ['wireguard', 'ipsec', 'vxlan'];

/**
 * Every driver as `isthmus gateway --cleanup` needs it: no credentials and no new key,
 * only what takes a node's cables, devices and (ipsec) charon down. Nothing is created.
 */
export function driversForCleanup(i: Pick<DriverInputs, 'runner' | 'logger' | 'stateDir' | 'privateSockets'>): CableDriver[] {
  const deps = { runner: i.runner, logger: i.logger };
  return [
    new WireGuardDriver(deps, i.privateSockets === true ? { socketDir: join(i.stateDir, 'wireguard') } : {}),
    new IpsecDriver({ ...deps, dir: join(i.stateDir, 'ipsec') }),
    new VxlanDriver(deps),
  ];
}

export function setupDriver(i: DriverInputs): DriverSetup {
  mkdirSync(i.stateDir, { recursive: true, mode: 0o700 });
  keepPrivate(i.stateDir, i.logger, 0o700);
  const deps = { runner: i.runner, logger: i.logger };
  switch (i.name) {
    case 'wireguard': {
      const keyFile = join(i.stateDir, 'wireguard.key');
      if (!existsSync(keyFile)) writeFileSync(keyFile, wireguardKeyPair().privateKey + '\n', { mode: 0o600 });
      else keepPrivate(keyFile, i.logger);
      const privateKey = read(keyFile, 'the WireGuard private key').trim();
      return {
        driver: new WireGuardDriver(deps, i.privateSockets === true ? { socketDir: join(i.stateDir, 'wireguard') } : {}),
        secrets: { privateKey },
        backend: { 'public-key': wireguardPublicKeyOf(privateKey) },
      };
    }
    case 'ipsec': {
      const driver = new IpsecDriver({ ...deps, dir: join(i.stateDir, 'ipsec') });
      if (i.pskFile !== undefined) {
        if (i.insecureSharedPsk !== true) {
          throw new IsthmusError(ErrorCodes.INVALID_CONFIG, 'an IPsec PSK is one secret shared by every cluster: any member holding it can impersonate any other. Use --tls-dir with a gateway certificate (`isthmus certs issue --gateway NAME --cluster ID`), or accept that risk explicitly with --insecure-shared-psk');
        }
        i.logger.warn('IPsec PSK mode: every cluster shares one secret, so any member can impersonate any other; use gateway certificates (--tls-dir) instead');
        return { driver, secrets: { psk: read(i.pskFile, 'the IPsec PSK').trim() }, backend: {} };
      }
      if (i.tlsDir === undefined) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, 'ipsec needs --tls-dir (certificates) or --psk-file');
      const stem = i.tlsName ?? 'tls';
      if (!/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$/.test(stem)) {
        throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `--tls-name ${JSON.stringify(stem)} is not a file name stem (letters, digits, '-', '_', '.'; a node name): give the name the certificate files carry in --tls-dir`);
      }
      const certPem = read(join(i.tlsDir, `${stem}.crt`), 'the gateway certificate');
      const cn = certificateInfo(certPem).commonName ?? '';
      return {
        driver,
        secrets: { certPem, keyPem: read(join(i.tlsDir, `${stem}.key`), 'the gateway key'), caPem: read(join(i.tlsDir, 'ca.crt'), 'the clusterset CA') },
        backend: { 'cert-cn': cn },
      };
    }
    case 'vxlan':
      return { driver: new VxlanDriver(deps), secrets: {}, backend: {} };
  }
}
