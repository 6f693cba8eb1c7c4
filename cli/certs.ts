import { join } from 'node:path';
import { ErrorCodes, IsthmusError, certificateInfo } from '../core/index.ts';
import {
  createClustersetCA, generateIpsecPsk, generateWireGuardKeyPair, issueFor, loadClustersetCA, readPemFile, renewDir,
  rotateClustersetCA, verifyWithBundle, writeClustersetCA, writeFileAtomic, writeIssued, type Identity,
} from '../certs/index.ts';
import { Etcd3 } from 'etcd3';
import { normalizeSerial, revoke } from '../broker/index.ts';
import { validateClusterId } from '../certs/index.ts';
import { opt, parseArgs, usageError, type Args } from './args.ts';
import type { Command } from './command.ts';

const USAGE = `isthmus certs ca create --out DIR [--name CN] [--days N]        (CA: default 1825 days)
  isthmus certs ca rotate --ca DIR [--days N] [--revoke-previous]
  isthmus certs issue --ca DIR --out DIR (--cluster ID | --admin | --server --san NAME[,IP…] | --gateway NAME --cluster ID) [--days N]
                                                                    (default 90 days; renew at 2/3)
  isthmus certs revoke --etcd URLS (--cluster ID | --serial HEX | --cert FILE) [--reason TEXT]
  isthmus certs renew --ca DIR --dir DIR [--force]
  isthmus certs show FILE [--ca DIR]
  isthmus certs wireguard --out DIR
  isthmus certs psk --out FILE`;

const FLAGS = new Set(['admin', 'server', 'force', 'help', 'revoke-previous']);

/** Default lifetimes: short leaves (renewed at 2/3 by \`certs renew\`), a CA rotated every few years. */
const LEAF_DAYS = 90;
const CA_DAYS = 1825;

function required(args: Args, name: string): string {
  const v = opt(args, name);
  if (v === undefined || v === 'true') throw usageError(`--${name} is required`, USAGE);
  return v;
}

function days(args: Args, def: number): number {
  const raw = opt(args, 'days');
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw usageError(`--days must be a positive number, got ${JSON.stringify(raw)}`, USAGE);
  return n;
}

function identityFrom(args: Args): Identity {
  const cluster = opt(args, 'cluster');
  const gateway = opt(args, 'gateway');
  const chosen = [cluster !== undefined && gateway === undefined, args.options.has('admin'), args.options.has('server'), gateway !== undefined].filter(Boolean).length;
  if (chosen !== 1) throw usageError('give exactly one of --cluster ID, --admin, --server, --gateway NAME --cluster ID', USAGE);
  if (args.options.has('admin')) return { role: 'admin' };
  if (args.options.has('server')) {
    const sans = args.options.get('san') ?? [];
    if (sans.length === 0) throw usageError('--server needs --san with the DNS names and IPs clients dial', USAGE);
    return { role: 'broker', sans };
  }
  if (gateway !== undefined) {
    if (cluster === undefined) throw usageError('--gateway needs --cluster ID', USAGE);
    return { role: 'gateway', clusterId: cluster, gateway };
  }
  return { role: 'cluster', clusterId: cluster as string };
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function run(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, FLAGS);
  const [verb, sub] = args.positionals;
  if (verb === undefined || args.options.has('help')) {
    out(`usage: ${USAGE}`);
    return verb === undefined ? 2 : 0;
  }
  switch (`${verb}${verb === 'ca' ? ` ${sub ?? ''}` : ''}`) {
    case 'ca create': {
      const dir = required(args, 'out');
      const name = opt(args, 'name');
      const ca = createClustersetCA({ validDays: days(args, CA_DAYS), ...(name === undefined ? {} : { commonName: name }) });
      await writeClustersetCA(dir, ca);
      out(`wrote clusterset CA to ${dir} (ca.crt, ca.key 0600); valid until ${certificateInfo(ca.certPem).notAfter.toISOString()}`);
      return 0;
    }
    case 'ca rotate': {
      const dir = required(args, 'ca');
      const rotated = rotateClustersetCA(await loadClustersetCA(dir), { validDays: days(args, CA_DAYS) });
      const revoke = args.options.has('revoke-previous');
      // --revoke-previous: the bundle holds the new CA only, so nothing the old key signed is trusted once peers load it
      const next = revoke ? { ...rotated, bundlePem: rotated.certPem } : rotated;
      await writeClustersetCA(dir, next, true);
      out(revoke
        ? `rotated the CA in ${dir} and dropped every previous CA from ca-bundle.crt: certificates they issued are refused once the broker and gateways load the new bundle. Re-issue every certificate now (\`isthmus certs renew --force\`), the broker's first.`
        : `rotated the CA in ${dir}; ca-bundle.crt trusts the new and the previous CA. Now run \`isthmus certs renew --force\` for every issued certificate (add --revoke-previous to a rotation to stop trusting the old CA at once).`);
      return 0;
    }
    case 'issue': {
      const identity = identityFrom(args);
      const dir = required(args, 'out');
      const ca = await loadClustersetCA(required(args, 'ca'));
      const issued = issueFor(ca, identity, { validDays: days(args, LEAF_DAYS) });
      await writeIssued(dir, issued, ca);
      const info = certificateInfo(issued.certPem);
      out(`issued ${identity.role} certificate CN=${info.commonName ?? ''} to ${dir} (tls.crt, tls.key 0600, ca.crt); valid until ${info.notAfter.toISOString()}`);
      return 0;
    }
    case 'renew': {
      const ca = await loadClustersetCA(required(args, 'ca'));
      const dir = required(args, 'dir');
      const r = await renewDir(dir, ca, { force: args.options.has('force') });
      out(r.renewed ? `renewed ${dir} (${r.reason}); valid until ${r.notAfter.toISOString()}` : `${dir}: ${r.reason}`);
      return 0;
    }
    case 'show': {
      const file = args.positionals[1];
      if (file === undefined) throw usageError('show needs a certificate file', USAGE);
      const pem = await readPemFile(file, 'certificate', 'give the path of a .crt file');
      const info = certificateInfo(pem);
      out(JSON.stringify({ ...info, notBefore: info.notBefore.toISOString(), notAfter: info.notAfter.toISOString() }, null, 2));
      const caDir = opt(args, 'ca');
      if (caDir !== undefined) {
        verifyWithBundle(pem, (await loadClustersetCA(caDir)).bundlePem);
        out('chain: valid');
      }
      return 0;
    }
    case 'revoke': {
      const etcdUrls = required(args, 'etcd').split(',').map((u) => u.trim()).filter((u) => u !== '');
      const cluster = opt(args, 'cluster');
      const serial = opt(args, 'serial');
      const certFile = opt(args, 'cert');
      if ([cluster, serial, certFile].filter((x) => x !== undefined).length !== 1) throw usageError('revoke needs exactly one of --cluster ID, --serial HEX, --cert FILE', USAGE);
      const what = cluster !== undefined
        ? { clusterId: validateClusterId(cluster) }
        : { serial: normalizeSerial(serial ?? certificateInfo(await readPemFile(certFile ?? '', 'certificate', 'give the path of the .crt file to revoke')).serial) };
      const etcd = new Etcd3({ hosts: etcdUrls, dialTimeout: 5_000 });
      try {
        const key = await revoke(etcd, what, opt(args, 'reason') ?? '');
        out(`revoked ${'clusterId' in what ? `cluster ${what.clusterId}` : `certificate ${what.serial}`} (${key}): every broker replica refuses it from its next request on`);
      } finally {
        etcd.close();
      }
      return 0;
    }
    case 'wireguard': {
      const dir = required(args, 'out');
      const kp = generateWireGuardKeyPair();
      await writeFileAtomic(join(dir, 'private.key'), `${kp.privateKey}\n`, true);
      await writeFileAtomic(join(dir, 'public.key'), `${kp.publicKey}\n`, false);
      out(`wrote WireGuard key pair to ${dir} (private.key 0600); public key ${kp.publicKey}`);
      return 0;
    }
    case 'psk': {
      const file = required(args, 'out');
      const psk = generateIpsecPsk();
      if (psk.mode !== 'psk') throw new IsthmusError(ErrorCodes.INTERNAL, 'PSK generation returned no PSK');
      await writeFileAtomic(file, `${psk.psk}\n`, true);
      out(`wrote an IPsec PSK to ${file} (0600)`);
      return 0;
    }
    default:
      throw usageError(`unknown certs command "${[verb, sub].filter((x) => x !== undefined).join(' ')}"`, USAGE);
  }
}

/** `isthmus certs …`: the clusterset CA and certificates. */
export const certsCommand: Command = {
  name: 'certs',
  run,
};
