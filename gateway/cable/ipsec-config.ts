import { ErrorCodes, IsthmusError, certificateInfo, keyMatchesCertificate, parseCidr, parseIp, verifyChain } from '../../core/index.ts';
import type { CableSpec, CableStatus, LocalEndpoint } from './driver.ts';
import { yes, type ViciMessage } from './vici.ts';

/**
 * The pure half of the ipsec driver (ipsec.ts): credentials check, spec validation, the
 * VICI load-conn message of a cable, parsing list-sas and the status of a cable. No I/O.
 */
export type IpsecAuth =
  | { readonly mode: 'pubkey'; readonly localId: string }
  | { readonly mode: 'psk'; readonly localId: string };

export const NAME_PREFIX = 'isthmus-';
export const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function connName(remoteCluster: string): string {
  return `${NAME_PREFIX}${remoteCluster}`;
}

export function childName(remoteCluster: string): string {
  return `${NAME_PREFIX}${remoteCluster}-net`;
}

/** The side whose cluster id sorts lower initiates. */
export function isInitiator(localCluster: string, remoteCluster: string): boolean {
  return localCluster < remoteCluster;
}

/** The PEM blocks of a bundle. */
export function pemBlocks(pem: string): string[] {
  return [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)].map((m) => `${m[0]}\n`);
}

/** The authentication chosen from the secrets (pure; validates, never echoes a secret). */
export function authFromSecrets(local: LocalEndpoint): IpsecAuth {
  const s = local.secrets;
  const certPem = s['certPem'];
  if (certPem !== undefined && certPem !== '') {
    const keyPem = s['keyPem'];
    const caPem = s['caPem'];
    if (keyPem === undefined || keyPem === '' || caPem === undefined || caPem === '') {
      throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'ipsec certificate mode needs secrets certPem, keyPem and caPem: issue them with `isthmus certs issue`');
    }
    const info = certificateInfo(certPem);
    const cn = info.commonName;
    if (cn === undefined) throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'the ipsec gateway certificate has no CN');
    if (!info.dnsNames.includes(cn)) {
      throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `the ipsec gateway certificate ${cn} does not carry its CN as a DNS name: issue it with \`isthmus certs issue\``);
    }
    // the CA may be a bundle (old and new CA during a rotation): one of them must have issued the certificate
    const cas = pemBlocks(caPem);
    let chainError: unknown = new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'the ipsec CA (secret caPem) holds no certificate');
    for (const ca of cas) {
      try {
        verifyChain(certPem, ca);
        chainError = undefined;
        break;
      } catch (err) {
        chainError = err;
      }
    }
    if (chainError !== undefined) throw chainError;
    if (!keyMatchesCertificate(keyPem, certPem)) {
      throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `the ipsec private key does not belong to certificate ${cn}: give the key written with it`);
    }
    return { mode: 'pubkey', localId: cn };
  }
  const psk = s['psk'];
  if (psk !== undefined && psk !== '') {
    if (Buffer.byteLength(psk) < 16) throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'the ipsec PSK is too short: generate one with `isthmus certs psk`');
    return { mode: 'psk', localId: local.clusterId };
  }
  throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'ipsec needs secrets certPem/keyPem/caPem (certificates) or psk: issue them with `isthmus certs`');
}

/** The remote IKE identity of a cable. */
export function remoteId(spec: CableSpec): string {
  const cn = spec.backend['cert-cn'];
  return cn !== undefined && cn !== '' ? cn : spec.remoteCluster;
}

/** Why a spec cannot be applied, or undefined (pure). */
export function specProblem(local: LocalEndpoint, spec: CableSpec): string | undefined {
  if (!LABEL.test(spec.remoteCluster)) return `remote cluster id ${JSON.stringify(spec.remoteCluster)} is not an RFC-1123 label`;
  if (spec.remoteCluster === local.clusterId) return 'a cable to the local cluster itself';
  let fam: number;
  try {
    fam = parseIp(spec.remoteIp).family;
  } catch {
    return `remote address ${JSON.stringify(spec.remoteIp)} is not an IP address`;
  }
  if (fam !== parseIp(local.privateIp).family) return `remote address ${spec.remoteIp} is not of the local address's family (${local.privateIp})`;
  if (!Number.isInteger(spec.remotePort) || spec.remotePort < 1 || spec.remotePort > 65535) return `remote port ${spec.remotePort} is not between 1 and 65535`;
  if (spec.remoteCidrs.length === 0) return 'the remote cluster has no CIDRs';
  for (const c of spec.remoteCidrs) {
    try {
      parseCidr(c);
    } catch {
      return `remote CIDR ${JSON.stringify(c)} is not a CIDR`;
    }
  }
  const id = remoteId(spec);
  if (!/^[A-Za-z0-9.-]{1,253}$/.test(id)) return `remote identity ${JSON.stringify(id)} is not a DNS name`;
  return undefined;
}

export interface ConnTimings {
  readonly dpdDelay: string;
  readonly ikeRekeyTime: string;
  readonly childRekeyTime: string;
}

/** The load-conn message for one cable (pure; holds no secret). */
export function connConfig(local: LocalEndpoint, auth: IpsecAuth, spec: CableSpec, t: ConnTimings): ViciMessage {
  const initiator = isInitiator(local.clusterId, spec.remoteCluster);
  const authMode = auth.mode === 'pubkey' ? 'pubkey' : 'psk';
  return {
    [connName(spec.remoteCluster)]: {
      version: '2',
      local_addrs: [local.privateIp],
      remote_addrs: [spec.remoteIp],
      local_port: String(local.port),
      remote_port: String(spec.remotePort),
      encap: spec.natTraversal ? 'yes' : 'no',
      mobike: 'no',
      dpd_delay: t.dpdDelay,
      rekey_time: t.ikeRekeyTime,
      keyingtries: '1',
      unique: 'replace',
      proposals: ['aes128gcm16-prfsha256-x25519', 'aes256-sha256-modp2048'],
      local: { auth: authMode, id: auth.localId },
      remote: { auth: authMode, id: remoteId(spec) },
      children: {
        [childName(spec.remoteCluster)]: {
          mode: 'tunnel',
          local_ts: [...local.cidrs],
          remote_ts: [...spec.remoteCidrs],
          esp_proposals: ['aes128gcm16', 'aes256-sha256'],
          rekey_time: t.childRekeyTime,
          start_action: 'none',
          dpd_action: initiator ? 'restart' : 'clear',
          close_action: 'none',
        },
      },
    },
  };
}

/** Stable comparison key of a spec (what set() compares against what was loaded). */
export function specKey(s: CableSpec): string {
  const backend = Object.keys(s.backend).sort().map((k) => [k, s.backend[k]]);
  return JSON.stringify([s.remoteCluster, s.remoteIp, s.remotePort, [...s.remoteCidrs], s.natTraversal, backend]);
}

export function str(v: ViciMessage[string] | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function section(v: ViciMessage[string] | undefined): ViciMessage | undefined {
  return v !== undefined && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v) ? (v as ViciMessage) : undefined;
}

/** What list-sas says about one IKE_SA, reduced to what the status needs (pure). */
export interface SaView {
  readonly uniqueId: string;
  readonly ikeState: string;
  readonly established: number | undefined;
  readonly children: readonly { state: string; bytesIn: number; bytesOut: number; encap: boolean }[];
}

/** Groups the list-sa events by IKE_SA config name (pure). */
export function parseListSas(events: readonly ViciMessage[]): Map<string, SaView[]> {
  const out = new Map<string, SaView[]>();
  for (const ev of events) {
    for (const [name, v] of Object.entries(ev)) {
      const ike = section(v);
      if (ike === undefined) continue;
      const children: SaView['children'][number][] = [];
      for (const cv of Object.values(section(ike['child-sas']) ?? {})) {
        const c = section(cv);
        if (c === undefined) continue;
        children.push({
          state: str(c['state']) ?? 'UNKNOWN',
          bytesIn: Number(str(c['bytes-in']) ?? 0),
          bytesOut: Number(str(c['bytes-out']) ?? 0),
          encap: yes(c['encap']),
        });
      }
      const est = str(ike['established']);
      const list = out.get(name) ?? [];
      list.push({ uniqueId: str(ike['uniqueid']) ?? '', ikeState: str(ike['state']) ?? 'UNKNOWN', established: est === undefined ? undefined : Number(est), children });
      out.set(name, list);
    }
  }
  return out;
}

/** The status of one cable from its SAs and what the driver knows (pure). */
export function cableStatus(
  spec: CableSpec,
  sas: readonly SaView[],
  context: { initiator: boolean; lastError: string | undefined; nowMs: number },
): CableStatus {
  const base = { remoteCluster: spec.remoteCluster, remoteIp: spec.remoteIp };
  const up = sas.find((s) => s.ikeState === 'ESTABLISHED' && s.children.some((c) => c.state === 'INSTALLED'));
  if (up !== undefined) {
    const installed = up.children.filter((c) => c.state === 'INSTALLED');
    return {
      ...base,
      state: 'connected',
      rxBytes: installed.reduce((n, c) => n + c.bytesIn, 0),
      txBytes: installed.reduce((n, c) => n + c.bytesOut, 0),
      ...(up.established === undefined ? {} : { establishedAt: context.nowMs - up.established * 1000 }),
    };
  }
  if (context.lastError !== undefined) return { ...base, state: 'error', message: context.lastError };
  const any = sas[0];
  if (any !== undefined) {
    const child = any.children[0];
    return { ...base, state: 'connecting', message: `IKE_SA ${any.ikeState}${child === undefined ? ', no CHILD_SA yet' : `, CHILD_SA ${child.state}`}` };
  }
  return {
    ...base,
    state: 'connecting',
    message: context.initiator ? 'initiating' : `waiting for ${spec.remoteCluster} to initiate (the lower cluster id initiates)`,
  };
}

const HINTS: readonly [RegExp, string][] = [
  [/AUTHENTICATION_FAILED/, 'the remote gateway refused our credentials: does it trust the same clusterset CA (or hold the same PSK)?'],
  [/no trusted .* found|constraint check failed/, 'the remote certificate is not from the clusterset CA or does not carry the expected identity (cert-cn)'],
  [/no shared key found|tried \d+ shared key/, 'the PSKs differ'],
  [/giving up after \d+ retransmits|peer not responding/, 'no answer from the remote gateway: check its address and that UDP 500 and 4500 reach it'],
  [/NO_PROPOSAL_CHOSEN/, 'the remote gateway has no matching connection (yet): it may not know this cluster'],
  [/TS_UNACCEPTABLE/, 'the remote gateway expects other CIDRs'],
];

/** The most telling line of an initiation's control log, with a hint what to check (pure). */
export function failureReason(logLines: readonly string[], errmsg: string): string {
  for (const [re, hint] of HINTS) {
    const line = logLines.find((l) => re.test(l));
    if (line !== undefined) return `${line} (${hint})`;
  }
  const failed = logLines.find((l) => /failed/i.test(l));
  return failed ?? errmsg;
}
