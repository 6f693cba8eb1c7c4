/**
 * The CustomResourceDefinitions of the Multi-Cluster Services API, built here and
 * written to deploy/crds/ by `node mcs-api/write-crds.ts` (a unit test checks the
 * files on disk equal what this builds, so they cannot drift apart).
 *
 * - ServiceExport and ServiceImport (group multicluster.x-k8s.io) follow the schema
 *   mcs-api v0.5.0 publishes: v1alpha1 served, v1beta1 served and stored, the same
 *   schema in both (so no conversion webhook: strategy None), status subresource,
 *   the same printer columns and short names.
 * - ClusterProperty (group about.k8s.io, KEP-2149, cluster-scoped, v1alpha1): the
 *   property `cluster.clusterset.k8s.io` names the cluster, `clusterset.k8s.io`
 *   the clusterset it belongs to.
 */

export type JsonSchema = { [key: string]: unknown };

const RELEASE_LABELS = {
  'multicluster.x-k8s.io/release-version': 'v0.5.0',
  'multicluster.x-k8s.io/crd-schema-revision': '0',
};

const str = (description?: string): JsonSchema => (description === undefined ? { type: 'string' } : { type: 'string', description });

/** metav1.Condition, as every Kubernetes API lists conditions. */
function conditions(): JsonSchema {
  return {
    type: 'array',
    description: 'Conditions of the object (Valid, Ready, Conflict on a ServiceExport).',
    items: {
      type: 'object',
      required: ['lastTransitionTime', 'message', 'reason', 'status', 'type'],
      properties: {
        lastTransitionTime: { type: 'string', format: 'date-time' },
        message: { type: 'string', maxLength: 32768 },
        observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
        reason: { type: 'string', maxLength: 1024, minLength: 1, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
        status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
        type: {
          type: 'string',
          maxLength: 316,
          pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
        },
      },
    },
    'x-kubernetes-list-map-keys': ['type'],
    'x-kubernetes-list-type': 'map',
  };
}

function objectRoot(spec: JsonSchema, status: JsonSchema, description: string, specRequired = false): JsonSchema {
  return {
    type: 'object',
    description,
    ...(specRequired ? { required: ['spec'] } : {}),
    properties: { apiVersion: str(), kind: str(), metadata: { type: 'object' }, spec, status },
  };
}

function serviceExportSchema(): JsonSchema {
  const stringMap = (what: string): JsonSchema => ({ type: 'object', additionalProperties: { type: 'string' }, description: what });
  return objectRoot(
    {
      type: 'object',
      description: 'What to carry to the ServiceImport besides the Service itself.',
      properties: {
        exportedAnnotations: stringMap('Annotations put on the ServiceImport in every importing cluster.'),
        exportedLabels: stringMap('Labels put on the ServiceImport in every importing cluster.'),
      },
    },
    { type: 'object', properties: { conditions: conditions() } },
    'Exports the Service of the same name and namespace to every cluster of the clusterset.',
  );
}

function serviceImportSchema(): JsonSchema {
  return objectRoot(
    {
      type: 'object',
      required: ['ports', 'type'],
      properties: {
        internalTrafficPolicy: str('Cluster or Local, from the oldest export.'),
        ipFamilies: { type: 'array', maxItems: 2, items: str() },
        ips: { type: 'array', maxItems: 2, items: str(), description: 'The clusterset IPs, one per family, ordered like ipFamilies; empty for Headless.' },
        ports: {
          type: 'array',
          items: {
            type: 'object',
            required: ['port'],
            properties: {
              appProtocol: str(),
              name: str(),
              port: { type: 'integer', format: 'int32' },
              protocol: str(),
            },
          },
          'x-kubernetes-list-type': 'atomic',
        },
        sessionAffinity: str('None or ClientIP.'),
        sessionAffinityConfig: {
          type: 'object',
          properties: { clientIP: { type: 'object', properties: { timeoutSeconds: { type: 'integer', format: 'int32' } } } },
        },
        trafficDistribution: str(),
        type: { type: 'string', enum: ['ClusterSetIP', 'Headless'] },
      },
    },
    {
      type: 'object',
      properties: {
        clusters: {
          type: 'array',
          description: 'The clusters exporting the Service.',
          items: { type: 'object', required: ['cluster'], properties: { cluster: str() } },
          'x-kubernetes-list-map-keys': ['cluster'],
          'x-kubernetes-list-type': 'map',
        },
        conditions: conditions(),
      },
    },
    'A Service of the clusterset as this cluster imports it (written by isthmus mcs).',
  );
}

interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
}

const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

function mcsCrd(plural: string, kind: string, shortNames: string[], schema: JsonSchema, columns: PrinterColumn[]): JsonSchema {
  const version = (name: string, storage: boolean): JsonSchema => ({
    name,
    served: true,
    storage,
    subresources: { status: {} },
    additionalPrinterColumns: columns,
    schema: { openAPIV3Schema: schema },
  });
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.multicluster.x-k8s.io`, labels: { ...RELEASE_LABELS } },
    spec: {
      group: 'multicluster.x-k8s.io',
      scope: 'Namespaced',
      names: { plural, singular: kind.toLowerCase(), kind, listKind: `${kind}List`, shortNames },
      versions: [version('v1alpha1', false), version('v1beta1', true)],
    },
  };
}

export function serviceExportCrd(): JsonSchema {
  return mcsCrd('serviceexports', 'ServiceExport', ['svcex', 'svcexport'], serviceExportSchema(), [AGE]);
}

export function serviceImportCrd(): JsonSchema {
  return mcsCrd('serviceimports', 'ServiceImport', ['svcim', 'svcimport'], serviceImportSchema(), [
    { name: 'Type', type: 'string', jsonPath: '.spec.type' },
    { name: 'IP', type: 'string', jsonPath: '.spec.ips' },
    AGE,
  ]);
}

export function clusterPropertyCrd(): JsonSchema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    // about.k8s.io is a protected group: the API server wants the approval annotation (KEP-2149's).
    metadata: { name: 'clusterproperties.about.k8s.io', annotations: { 'api-approved.kubernetes.io': 'https://github.com/kubernetes/enhancements/tree/master/keps/sig-multicluster/2149-clusterid' } },
    spec: {
      group: 'about.k8s.io',
      scope: 'Cluster',
      names: { plural: 'clusterproperties', singular: 'clusterproperty', kind: 'ClusterProperty', listKind: 'ClusterPropertyList', shortNames: ['clusterprop'] },
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          additionalPrinterColumns: [{ name: 'Value', type: 'string', jsonPath: '.spec.value' }, AGE],
          schema: {
            openAPIV3Schema: objectRoot(
              {
                type: 'object',
                required: ['value'],
                properties: { value: { type: 'string', minLength: 1, maxLength: 128000, description: 'The property value, e.g. the cluster id for cluster.clusterset.k8s.io.' } },
              },
              { type: 'object' },
              'A property of this cluster (KEP-2149): cluster.clusterset.k8s.io is its id, clusterset.k8s.io its clusterset.',
              true,
            ),
          },
        },
      ],
    },
  };
}

/** File name under deploy/crds/ → CRD object. */
export function mcsCrds(): Record<string, JsonSchema> {
  return {
    'serviceexports.multicluster.x-k8s.io.json': serviceExportCrd(),
    'serviceimports.multicluster.x-k8s.io.json': serviceImportCrd(),
    'clusterproperties.about.k8s.io.json': clusterPropertyCrd(),
  };
}

/** A CRD object as the file holds it: two-space JSON and a final newline. */
export function crdFileText(crd: JsonSchema): string {
  return JSON.stringify(crd, null, 2) + '\n';
}
