/**
 * The ClusterSetNetworkPolicy CRD (isthmus.dev/v1alpha1, namespaced), built here and
 * written to deploy/crds/ by `node policy/write-crd.ts`; a unit test checks the file on
 * disk equals what this builds. The schema checks shapes and ranges; the full rules
 * (distinct priorities, selector operators with their values) are checked by
 * validatePolicySpec, whose error the controller writes to the status.
 */
type Schema = { [key: string]: unknown };

const labelSelector = (description: string): Schema => ({
  type: 'object',
  description,
  properties: {
    matchLabels: { type: 'object', additionalProperties: { type: 'string' } },
    matchExpressions: {
      type: 'array',
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string' },
          operator: { type: 'string', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  },
});

const clusters = (description: string): Schema => ({
  type: 'object',
  description,
  properties: {
    ids: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 63 } },
    selector: labelSelector('Clusters whose labels (their ClusterProperties as published to the broker) match.'),
  },
});

const action = { type: 'string', enum: ['Allow', 'Deny'] };

export function policyCrd(): Schema {
  const spec: Schema = {
    type: 'object',
    required: ['appliedTo'],
    properties: {
      appliedTo: {
        type: 'object',
        description: 'The destination pods in each receiving cluster.',
        properties: {
          podSelector: labelSelector('Pods of the target namespaces (empty: all).'),
          namespaceSelector: labelSelector('Target namespaces (absent: the policy\'s own namespace).'),
          clusters: clusters('Receiving clusters (absent: every member).'),
        },
      },
      ingress: {
        type: 'array',
        maxItems: 64,
        description: 'Tried by ascending priority; the first rule that matches decides.',
        items: {
          type: 'object',
          required: ['priority', 'action'],
          properties: {
            name: { type: 'string', maxLength: 63 },
            priority: { type: 'integer', minimum: 0, maximum: 65535, description: '0 first; distinct within a policy.' },
            action,
            from: {
              type: 'array',
              maxItems: 16,
              items: {
                type: 'object',
                properties: {
                  clusters: clusters('Source clusters by id or selector (absent: every remote cluster).'),
                  namespaceSelector: labelSelector('Source namespaces (absent: the destination namespace\'s name — namespace sameness).'),
                  podSelector: labelSelector('Source pods (empty: all).'),
                },
              },
            },
            ports: {
              type: 'array',
              maxItems: 32,
              items: {
                type: 'object',
                properties: {
                  protocol: { type: 'string', enum: ['TCP', 'UDP', 'SCTP'], default: 'TCP' },
                  port: { type: 'integer', minimum: 1, maximum: 65535 },
                  endPort: { type: 'integer', minimum: 1, maximum: 65535 },
                },
              },
            },
          },
        },
      },
      default: { ...action, description: 'Cross-cluster traffic into the target namespaces that no rule matches (default Allow).' },
    },
  };
  const status: Schema = {
    type: 'object',
    properties: {
      clusters: {
        type: 'array',
        description: 'Per receiving cluster: Accepted, NotApplicable or Error, and on how many of its nodes it is enforced.',
        items: {
          type: 'object',
          required: ['cluster', 'state'],
          properties: {
            cluster: { type: 'string' },
            state: { type: 'string', enum: ['Accepted', 'NotApplicable', 'Error'] },
            enforcedNodes: { type: 'integer', minimum: 0 },
            nodes: { type: 'integer', minimum: 0 },
            message: { type: 'string', maxLength: 32768 },
            observedGeneration: { type: 'integer', minimum: 0, description: 'The generation of the policy this entry is about.' },
          },
        },
        'x-kubernetes-list-map-keys': ['cluster'],
        'x-kubernetes-list-type': 'map',
      },
    },
  };
  return namespacedCrd({ kind: 'ClusterSetNetworkPolicy', plural: 'clustersetnetworkpolicies', shortName: 'csnp' }, [
    { name: 'Default', type: 'string', jsonPath: '.spec.default' },
  ], { type: 'object', required: ['spec'], properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, spec, status } });
}

/** An isthmus.dev/v1alpha1 namespaced CRD with a status subresource (pure). */
function namespacedCrd(names: { kind: string; plural: string; shortName: string }, columns: readonly Schema[], schema: Schema): Schema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${names.plural}.isthmus.dev` },
    spec: {
      group: 'isthmus.dev',
      scope: 'Namespaced',
      names: { kind: names.kind, listKind: `${names.kind}List`, plural: names.plural, singular: names.kind.toLowerCase(), shortNames: [names.shortName] },
      versions: [{
        name: 'v1alpha1',
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: [...columns, { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
        schema: { openAPIV3Schema: schema },
      }],
    },
  };
}

export const POLICY_CRD_FILE = 'clustersetnetworkpolicies.isthmus.dev.json';

export function policyCrdText(): string {
  return JSON.stringify(policyCrd(), null, 2) + '\n';
}

/**
 * The `PolicyAgent` CRD (isthmus.dev/v1alpha1, namespaced, one per node, named after it):
 * what the node's policy agent has applied — each policy by key and generation, the
 * ruleset's digest — or the error of its last apply (node-status.ts). Written by the agent,
 * read by the controller for "enforced on N of M nodes".
 */
export function policyAgentCrd(): Schema {
  const status: Schema = {
    type: 'object',
    properties: {
      filter: { type: 'string', description: 'nftables or iptables' },
      digest: { type: 'string', description: 'digest of the ruleset in the kernel (empty: none applied yet)' },
      applied: {
        type: 'array',
        description: 'the policies the node\'s ruleset enforces, by record key (cluster/namespace/name) and generation',
        items: { type: 'object', required: ['policy', 'generation'], properties: { policy: { type: 'string' }, generation: { type: 'integer', minimum: 0 } } },
      },
      error: { type: 'string', maxLength: 32768, description: 'why the last apply failed (empty: it succeeded)' },
      summary: { type: 'string' },
    },
  };
  return namespacedCrd({ kind: 'PolicyAgent', plural: 'policyagents', shortName: 'pa' }, [
    { name: 'Filter', type: 'string', jsonPath: '.status.filter' },
    { name: 'Summary', type: 'string', jsonPath: '.status.summary' },
  ], { type: 'object', properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, spec: { type: 'object', properties: { nodeName: { type: 'string' } } }, status } });
}

export const POLICY_AGENT_CRD_FILE = 'policyagents.isthmus.dev.json';

export function policyAgentCrdText(): string {
  return JSON.stringify(policyAgentCrd(), null, 2) + '\n';
}
