/**
 * The broker's records as TypeScript values, field for field the messages of
 * broker.proto (snake_case, as stored in etcd; see KEYS.md). int64 revisions are
 * plain numbers here (etcd revisions stay far below 2^53).
 */
export const KINDS = ['CLUSTER', 'ENDPOINT', 'EXPORT', 'POLICY', 'IDENTITY', 'POLICY_STATUS'] as const;
export type Kind = (typeof KINDS)[number];

export interface Cluster {
  cluster_id: string;
  pod_cidrs: string[];
  service_cidrs: string[];
  labels: Record<string, string>;
  /** Set by the broker under global addressing, else "". */
  global_cidr: string;
}

export interface EndpointPort {
  name: string;
  port: number;
  protocol: string;
}

export interface Endpoint {
  cluster_id: string;
  hostname: string;
  private_ip: string;
  public_ip: string;
  ports: EndpointPort[];
  cable_driver: string;
  backend_config: Record<string, string>;
  health_check_ip: string;
  /** Set by the broker. */
  observed_source_ip: string;
}

export interface ServicePort {
  name: string;
  protocol: string;
  port: number;
  app_protocol: string;
}

export interface ExportEndpoint {
  hostname: string;
  addresses: string[];
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** "" when the source slice names no zone. */
  zone: string;
}

export interface Export {
  cluster_id: string;
  namespace: string;
  name: string;
  type: string;
  ports: ServicePort[];
  session_affinity: string;
  session_affinity_timeout_seconds: number;
  ip_families: string[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  creation_time: string;
  /** The Service's pod endpoints, for both types. */
  endpoints: ExportEndpoint[];
  /** "Cluster", "Local" or "" (unset). */
  internal_traffic_policy: string;
  /** e.g. "PreferClose", or "" (unset). */
  traffic_distribution: string;
  /** Per service port (same name and protocol), the pods' resolved target port. */
  endpoint_ports: ServicePort[];
}

/** A ClusterSetNetworkPolicy authored in cluster_id (validation: identity.ts). */
export interface Policy {
  cluster_id: string;
  namespace: string;
  name: string;
  /** The normalized spec as JSON (core/broker-api/policy.ts). */
  spec: string;
  /** metadata.generation of the source object. */
  generation: number;
}

export interface Identity {
  /** Unique within its record. */
  id: number;
  labels: Record<string, string>;
}

export interface IdentityPod {
  ip: string;
  name: string;
  /** The id of one of the record's identities. */
  identity: number;
}

/** One namespace's pods of one cluster: label sets deduplicated into identities, pods referring to them. */
export interface IdentitySet {
  cluster_id: string;
  namespace: string;
  namespace_labels: Record<string, string>;
  identities: Identity[];
  pods: IdentityPod[];
}

/** How cluster_id receives the policy policy_cluster/namespace/name (validation: identity.ts). */
export interface PolicyStatusRecord {
  cluster_id: string;
  policy_cluster: string;
  namespace: string;
  name: string;
  /** The policy's generation this status is about. */
  generation: number;
  state: 'Accepted' | 'NotApplicable' | 'Error';
  /** At most 1 KiB. */
  message: string;
  enforced_nodes: number;
  nodes: number;
}

export interface RecordOf {
  CLUSTER: Cluster;
  ENDPOINT: Endpoint;
  EXPORT: Export;
  POLICY: Policy;
  IDENTITY: IdentitySet;
  POLICY_STATUS: PolicyStatusRecord;
}

export type AnyRecord = Cluster | Endpoint | Export | Policy | IdentitySet | PolicyStatusRecord;

export type EventType = 'PUT' | 'DELETE';

/** One change (or, in a List, one current record). */
export interface BrokerEvent {
  type: EventType;
  kind: Kind;
  /** "<cluster>", "<cluster>/<hostname>", "<cluster>/<namespace>/<name>" (EXPORT, POLICY) "<cluster>/<namespace>" (IDENTITY) or "<cluster>/<policy cluster>/<namespace>/<name>" (POLICY_STATUS). */
  key: string;
  revision: number;
  record: AnyRecord;
}
