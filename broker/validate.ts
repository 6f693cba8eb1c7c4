import { isIP } from 'node:net';
import { ErrorCodes, IsthmusError, PRIVATE_RANGES, addressProblem, formatCidr, parseCidr, cidrsOverlap, messageOf, routedCidrProblem } from '../core/index.ts';
import type { Cluster, Endpoint, EndpointPort, Export, ExportEndpoint, ServicePort } from '../core/broker-api/types.ts';

/**
 * Validation of everything a client sends, pure. Each function takes the decoded
 * message (fields may be missing or of the wrong type when a peer is malicious),
 * returns a normalized record, or throws INVALID_ARGUMENT naming the field and what
 * is wrong.
 */

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const BACKEND_VALUE = /^[\x21-\x7e]*$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

const MAX_LIST = 64;
const MAX_MAP = 64;

function invalid(message: string): IsthmusError {
  return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, message);
}

function str(v: unknown, field: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw invalid(`${field} must be a string`);
  return v;
}

function arr(v: unknown, field: string, max = MAX_LIST): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid(`${field} must be a list`);
  if (v.length > max) throw invalid(`${field} has ${v.length} items; at most ${max} are allowed`);
  return v;
}

function uint(v: unknown, field: string, min: number, max: number, def?: number): number {
  if ((v === undefined || v === null || v === 0) && def !== undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(`${field} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function validateClusterId(v: unknown, field = 'cluster_id'): string {
  const id = str(v, field);
  if (id.length === 0 || id.length > 63 || !LABEL.test(id)) {
    throw invalid(`${field} ${JSON.stringify(id)} is not an RFC-1123 label: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit`);
  }
  return id;
}

function label(v: unknown, field: string): string {
  const s = str(v, field);
  if (s.length === 0 || s.length > 63 || !LABEL.test(s)) throw invalid(`${field} ${JSON.stringify(s)} is not an RFC-1123 label`);
  return s;
}

function hostname(v: unknown, field: string): string {
  const s = str(v, field);
  if (s.length === 0 || s.length > 253 || !SUBDOMAIN.test(s) || s.split('.').some((p) => p.length > 63)) {
    throw invalid(`${field} ${JSON.stringify(s)} is not an RFC-1123 host name (lower case)`);
  }
  return s;
}

/** A unicast address (see core/unicast.ts): peers are sent traffic to it. */
function ip(v: unknown, field: string, required: boolean): string {
  const s = str(v, field);
  if (s === '' && !required) return '';
  if (isIP(s) === 0) throw invalid(`${field} ${JSON.stringify(s)} is not an IPv4 or IPv6 address`);
  const problem = addressProblem(s);
  if (problem !== undefined) throw invalid(`${field}: ${problem}`);
  return s;
}

function oneOf(v: unknown, field: string, values: readonly string[], def: string): string {
  const s = str(v, field);
  if (s === '') return def;
  if (!values.includes(s)) throw invalid(`${field} must be one of ${values.join(', ')}, got ${JSON.stringify(s)}`);
  return s;
}

function stringMap(v: unknown, field: string, keyPattern: RegExp, valueMax: number, valuePattern?: RegExp): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid(`${field} must be a map of strings`);
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_MAP) throw invalid(`${field} has ${entries.length} entries; at most ${MAX_MAP} are allowed`);
  const out: Record<string, string> = {};
  for (const [k, val] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (k.length > 253 || !keyPattern.test(k)) throw invalid(`${field}: key ${JSON.stringify(k)} is not a valid name`);
    if (typeof val !== 'string') throw invalid(`${field}[${k}] must be a string`);
    if (val.length > valueMax || (valuePattern !== undefined && !valuePattern.test(val))) {
      throw invalid(`${field}[${k}]: value is not valid (at most ${valueMax} characters${valuePattern === undefined ? '' : valuePattern === BACKEND_VALUE ? ', printable ASCII without spaces' : ', letters, digits, "-", "_", "."'})`);
    }
    out[k] = val;
  }
  return out;
}

function cidrList(v: unknown, field: string): string[] {
  const list = arr(v, field, 16).map((c, i) => {
    const s = str(c, `${field}[${i}]`);
    try {
      return formatCidr(parseCidr(s));
    } catch (err) {
      throw invalid(`${field}[${i}]: ${messageOf(err)}`);
    }
  });
  if (list.length === 0) throw invalid(`${field} must hold at least one CIDR`);
  return list;
}

/**
 * A Cluster as a member registers it (global_cidr is ignored: the broker sets it). Its
 * CIDRs must be routable unicast ranges inside `allowed` (default the private ranges).
 */
export function validateCluster(v: unknown, allowed: readonly string[] = PRIVATE_RANGES): Cluster {
  if (v === undefined || v === null || typeof v !== 'object') throw invalid('cluster is required');
  const c = v as Record<string, unknown>;
  const cluster: Cluster = {
    cluster_id: validateClusterId(c['cluster_id']),
    pod_cidrs: cidrList(c['pod_cidrs'], 'pod_cidrs'),
    service_cidrs: cidrList(c['service_cidrs'], 'service_cidrs'),
    labels: stringMap(c['labels'], 'labels', QUALIFIED_NAME, 63, LABEL_VALUE),
    global_cidr: '',
  };
  const all = [...cluster.pod_cidrs, ...cluster.service_cidrs];
  for (const c of all) {
    const problem = routedCidrProblem(c, allowed);
    if (problem !== undefined) throw invalid(`cluster ${cluster.cluster_id}: ${problem}`);
  }
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      if (cidrsOverlap(parseCidr(all[i] as string), parseCidr(all[j] as string))) {
        throw invalid(`cluster ${cluster.cluster_id}: its own CIDRs ${all[i]} and ${all[j]} overlap`);
      }
    }
  }
  return cluster;
}

const PORT_PROTOCOLS = ['UDP', 'TCP'] as const;
/** The only ports below 1024 a gateway may publish: IKE and IKE over NAT-T. */
const IKE_PORTS: readonly number[] = [500, 4500];

function endpointPort(v: unknown, i: number): EndpointPort {
  if (v === null || typeof v !== 'object') throw invalid(`ports[${i}] must be a message`);
  const p = v as Record<string, unknown>;
  const name = str(p['name'], `ports[${i}].name`);
  if (name !== '' && (name.length > 63 || !LABEL.test(name))) throw invalid(`ports[${i}].name ${JSON.stringify(name)} is not an RFC-1123 label`);
  const port = uint(p['port'], `ports[${i}].port`, 1, 65535);
  if (port < 1024 && !IKE_PORTS.includes(port)) throw invalid(`ports[${i}].port ${port} is a privileged port peers must not be pointed at: use 1024-65535 (or 500/4500 for IKE)`);
  return { name, port, protocol: oneOf(p['protocol'], `ports[${i}].protocol`, PORT_PROTOCOLS, 'UDP') };
}

/**
 * An Endpoint as a gateway publishes it (observed_source_ip is set by the broker). An
 * IPsec identity (`cert-cn`) must be "<gateway>.<cluster_id>" of this very cluster:
 * the name its gateway certificate carries, so no cluster can claim another's.
 */
export function validateEndpoint(v: unknown): Endpoint {
  if (v === undefined || v === null || typeof v !== 'object') throw invalid('endpoint is required');
  const e = v as Record<string, unknown>;
  const endpoint = endpointFields(e);
  const cn = endpoint.backend_config['cert-cn'];
  if (cn !== undefined && !(cn.endsWith(`.${endpoint.cluster_id}`) && LABEL.test(cn.slice(0, -endpoint.cluster_id.length - 1)))) {
    throw invalid(`backend_config[cert-cn] ${JSON.stringify(cn)} is not "<gateway>.${endpoint.cluster_id}": publish the CN of this cluster's gateway certificate (\`isthmus certs issue --gateway NAME --cluster ${endpoint.cluster_id}\`)`);
  }
  return endpoint;
}

function endpointFields(e: Record<string, unknown>): Endpoint {
  return {
    cluster_id: validateClusterId(e['cluster_id']),
    hostname: hostname(e['hostname'], 'hostname'),
    private_ip: ip(e['private_ip'], 'private_ip', true),
    public_ip: ip(e['public_ip'], 'public_ip', false),
    ports: arr(e['ports'], 'ports', 16).map(endpointPort),
    cable_driver: label(e['cable_driver'], 'cable_driver'),
    // relayed to every gateway, its logs and status: short, printable, one line
    backend_config: stringMap(e['backend_config'], 'backend_config', QUALIFIED_NAME, 512, BACKEND_VALUE),
    health_check_ip: ip(e['health_check_ip'], 'health_check_ip', false),
    observed_source_ip: '',
  };
}

const SERVICE_PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

function servicePort(v: unknown, i: number, list = 'ports'): ServicePort {
  if (v === null || typeof v !== 'object') throw invalid(`${list}[${i}] must be a message`);
  const p = v as Record<string, unknown>;
  const name = str(p['name'], `${list}[${i}].name`);
  if (name !== '' && (name.length > 63 || !LABEL.test(name))) throw invalid(`${list}[${i}].name ${JSON.stringify(name)} is not an RFC-1123 label`);
  const appProtocol = str(p['app_protocol'], `${list}[${i}].app_protocol`);
  if (appProtocol.length > 253) throw invalid(`${list}[${i}].app_protocol is longer than 253 characters`);
  return { name, protocol: oneOf(p['protocol'], `${list}[${i}].protocol`, SERVICE_PROTOCOLS, 'TCP'), port: uint(p['port'], `${list}[${i}].port`, 1, 65535), app_protocol: appProtocol };
}

function exportEndpoint(v: unknown, i: number): ExportEndpoint {
  if (v === null || typeof v !== 'object') throw invalid(`endpoints[${i}] must be a message`);
  const e = v as Record<string, unknown>;
  const h = str(e['hostname'], `endpoints[${i}].hostname`);
  if (h !== '' && (h.length > 63 || !LABEL.test(h))) throw invalid(`endpoints[${i}].hostname ${JSON.stringify(h)} is not an RFC-1123 label`);
  const addresses = arr(e['addresses'], `endpoints[${i}].addresses`, 16).map((a, j) => ip(a, `endpoints[${i}].addresses[${j}]`, true));
  if (addresses.length === 0) throw invalid(`endpoints[${i}].addresses must hold at least one IP`);
  const flag = (f: string): boolean => {
    const v = e[f];
    if (v !== undefined && v !== null && typeof v !== 'boolean') throw invalid(`endpoints[${i}].${f} must be a boolean`);
    return v === true;
  };
  const zone = str(e['zone'], `endpoints[${i}].zone`);
  if (zone.length > 63 || !LABEL_VALUE.test(zone)) throw invalid(`endpoints[${i}].zone ${JSON.stringify(zone)} is not a label value`);
  return { hostname: h, addresses, ready: flag('ready'), serving: flag('serving'), terminating: flag('terminating'), zone };
}

/** An Export as a cluster publishes it; creation_time defaults to `now`. */
export function validateExport(v: unknown, now: Date = new Date()): Export {
  if (v === undefined || v === null || typeof v !== 'object') throw invalid('export is required');
  const x = v as Record<string, unknown>;
  const type = oneOf(x['type'], 'type', ['ClusterSetIP', 'Headless'], 'ClusterSetIP');
  const created = str(x['creation_time'], 'creation_time');
  if (created !== '' && (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(created) || Number.isNaN(Date.parse(created)))) {
    throw invalid(`creation_time ${JSON.stringify(created)} is not an RFC 3339 time such as 2024-05-01T12:00:00Z`);
  }
  const endpoints = arr(x['endpoints'], 'endpoints', 1000).map(exportEndpoint);
  const trafficDistribution = str(x['traffic_distribution'], 'traffic_distribution');
  if (trafficDistribution !== '' && (trafficDistribution.length > 63 || !QUALIFIED_NAME.test(trafficDistribution))) {
    throw invalid(`traffic_distribution ${JSON.stringify(trafficDistribution)} is not a valid value such as PreferClose`);
  }
  const families = arr(x['ip_families'], 'ip_families', 2).map((f, i) => oneOf(f, `ip_families[${i}]`, ['IPv4', 'IPv6'], ''));
  if (families.includes('') || new Set(families).size !== families.length) throw invalid('ip_families must list IPv4 and/or IPv6, each once');
  return {
    cluster_id: validateClusterId(x['cluster_id']),
    namespace: label(x['namespace'], 'namespace'),
    name: label(x['name'], 'name'),
    type,
    ports: arr(x['ports'], 'ports', 100).map((p, i) => servicePort(p, i)),
    session_affinity: oneOf(x['session_affinity'], 'session_affinity', ['None', 'ClientIP'], 'None'),
    session_affinity_timeout_seconds: uint(x['session_affinity_timeout_seconds'] ?? 0, 'session_affinity_timeout_seconds', 0, 86_400),
    ip_families: families,
    labels: stringMap(x['labels'], 'labels', QUALIFIED_NAME, 63, LABEL_VALUE),
    annotations: stringMap(x['annotations'], 'annotations', QUALIFIED_NAME, 65_536),
    creation_time: created === '' ? now.toISOString() : created,
    endpoints,
    internal_traffic_policy: oneOf(x['internal_traffic_policy'], 'internal_traffic_policy', ['Cluster', 'Local'], ''),
    traffic_distribution: trafficDistribution,
    endpoint_ports: arr(x['endpoint_ports'], 'endpoint_ports', 100).map((p, i) => servicePort(p, i, 'endpoint_ports')),
  };
}

/** TTL of an endpoint lease in seconds: 5..3600, default 30. */
export function validateTtl(v: unknown): number {
  return uint(v, 'ttl_seconds', 5, 3600, 30);
}

export { hostname as validateHostname, label as validateLabel };
