import { dump } from 'js-yaml';
import { JOIN_CRDS } from './join.ts';
import { IPSEC_SECRET, JOIN_RBAC, POLICY_WORKLOADS, gatewayConfigMap, mcsConfigMap, workload, type JoinSettings } from './join-plan.ts';
import { manifest, opaqueSecret, pick, type Obj } from './kube-apply.ts';

/**
 * The Helm chart deploy/helm/isthmus, generated from the plain manifests of deploy/ through
 * the same functions `isthmus join` fills them in with (join-plan.ts), so chart and join
 * cannot drift: each value join fills in becomes a placeholder, and each placeholder a
 * template expression over .Values. It holds what join installs for one cluster — the
 * namespace, the CRDs (crds/), RBAC, the broker client Secret (from values, or an existing
 * Secret), the ClusterProperty, the ConfigMaps, the gateway Deployment, the route agent
 * DaemonSet, the MCS controller and DNS — but labels no node. `node scripts/helm-chart.ts`
 * writes it; cli/helm-chart.test.ts checks that the files on disk are these.
 */
export const CHART_DIR = 'deploy/helm/isthmus';

const NS = 'isthmus-system';
const CLIENT_SECRET = 'isthmus-broker-client';

/** Placeholder name → the Go template expression it becomes. */
const EXPRESSIONS: Record<string, string> = {
  clusterId: '{{ .Values.clusterId | quote }}',
  brokers: '{{ include "isthmus.brokers" . | quote }}',
  podBroker: '{{ .Values.podBroker | default (include "isthmus.brokers" .) | quote }}',
  cableDriver: '{{ .Values.cableDriver | quote }}',
  podCidrs: '{{ join "," .Values.podCidrs | quote }}',
  serviceCidrs: '{{ join "," .Values.serviceCidrs | quote }}',
  publicIp: '{{ .Values.publicIp | quote }}',
  natTraversal: '{{ .Values.natTraversal | toString | quote }}',
  privateSockets: '{{ .Values.privateSockets | toString | quote }}',
  image: '{{ .Values.image | quote }}',
  gatewayReplicas: '{{ .Values.gatewayReplicas }}',
  brokerClientSecret: '{{ include "isthmus.brokerClientSecret" . | quote }}',
  caCrt: '{{ .Values.brokerClient.caCrt | b64enc | quote }}',
  tlsCrt: '{{ .Values.brokerClient.tlsCrt | b64enc | quote }}',
  tlsKey: '{{ .Values.brokerClient.tlsKey | b64enc | quote }}',
};
const ph = (name: keyof typeof EXPRESSIONS & string): string => `@@${name}@@`;

/** The settings join fills deploy/ in with, as placeholders. */
const PLACEHOLDERS = {
  clusterId: ph('clusterId'), brokers: [ph('brokers')], podBroker: ph('podBroker'), cableDriver: ph('cableDriver'), podCidrs: [ph('podCidrs')], serviceCidrs: [ph('serviceCidrs')],
  publicIp: ph('publicIp'), natTraversal: false, privateSockets: false, gatewayReplicas: 1, image: ph('image'),
} as unknown as JoinSettings;

const HEADER = '# Generated from deploy/ by `node scripts/helm-chart.ts` (cli/helm-chart.ts): do not edit by hand.\n';

function yaml(objects: readonly Obj[]): string {
  const docs = objects.map((o) => dump(JSON.parse(JSON.stringify(o)) as unknown, { lineWidth: -1, noRefs: true, sortKeys: false }));
  const text = HEADER + docs.join('---\n');
  return text.replace(/'@@(\w+)@@'|@@(\w+)@@/g, (_m, a: string | undefined, b: string | undefined) => {
    const name = a ?? b ?? '';
    const expr = EXPRESSIONS[name];
    if (expr === undefined) throw new Error(`helm chart: unknown placeholder ${name}`);
    return expr;
  });
}

/** Every volume of a pod template that mounts the broker client Secret takes the chart's Secret name. */
function brokerSecretName(o: Obj): Obj {
  const spec = (o.spec as { template?: { spec?: { volumes?: { secret?: { secretName?: string } }[] } } } | undefined)?.template?.spec;
  for (const v of spec?.volumes ?? []) if (v.secret?.secretName === CLIENT_SECRET) v.secret.secretName = ph('brokerClientSecret');
  return o;
}

const HELPERS = `{{/* The broker's addresses as BROKER holds them, one comma list: brokers, or broker (one address, as older values give it). */}}
{{- define "isthmus.brokers" -}}
{{- if .Values.brokers }}{{ join "," .Values.brokers }}{{ else if .Values.broker }}{{ .Values.broker }}{{ else }}{{ fail "brokers: give the broker's addresses, host:port each (broker-info.json's brokers)" }}{{ end -}}
{{- end -}}
{{/* The Secret the gateway and the MCS controller mount: brokerClient.existingSecret, or the chart's own. */}}
{{- define "isthmus.brokerClientSecret" -}}
{{- .Values.brokerClient.existingSecret | default "${CLIENT_SECRET}" -}}
{{- end -}}
`;

const CHECK_CREDENTIALS = `{{- $c := .Values.brokerClient }}
{{- if not $c.existingSecret }}
{{- if not (and $c.caCrt $c.tlsCrt $c.tlsKey) }}
{{- fail "brokerClient: give caCrt, tlsCrt and tlsKey (this cluster's broker certificate, from \`isthmus certs issue --ca CA --cluster ID --out DIR\`), or existingSecret: the name of a Secret in ${NS} holding ca.crt, tls.crt and tls.key" }}
{{- end }}
`;

const NOTES = `Isthmus {{ .Chart.AppVersion }} is installed for cluster {{ .Values.clusterId }} (broker {{ include "isthmus.brokers" . }}, {{ .Values.cableDriver }} cables).
The gateway runs on nodes labelled isthmus.dev/gateway-capable=true; label at least one:
  kubectl label node NODE isthmus.dev/gateway-capable=true
Follow it: kubectl -n ${NS} get gateways,routeagents   (or: isthmus show all)
{{- if eq .Values.cableDriver "ipsec" }}
IPsec: the gateways read their certificates from the Secret ${IPSEC_SECRET} (NODE.crt, NODE.key for each
gateway node, and ca.crt): \`isthmus join --cable-driver ipsec\` makes it, or issue them with
  isthmus certs issue --ca DIR --gateway NODE --cluster {{ .Values.clusterId }} --out DIR
{{- end }}
`;

const VALUES = `# Values of the Isthmus chart: what \`isthmus join\` fills in for one cluster.
# clusterId, brokers, podCidrs, serviceCidrs and the broker client credentials have no default.
clusterId: ""          # this cluster's id, an RFC-1123 label
brokers: []            # the broker's addresses, host:port each (broker-info.json's brokers: every
                       # node of its NodePort; the parts use whichever answers)
broker: ""             # older values' single address, used when brokers is empty
podBroker: ""          # where pods dial the broker ("": brokers); in the cluster that runs the
                       # broker, its Service's cluster IP:7443 (pods reaching a NodePort with
                       # externalTrafficPolicy Local of another node may never connect)
cableDriver: wireguard # wireguard, ipsec or vxlan
podCidrs: []           # the cluster's pod CIDRs
serviceCidrs: []       # the cluster's service CIDRs
publicIp: ""           # the gateways' public address ("": as the broker sees them)
natTraversal: false    # force NAT traversal on every cable
privateSockets: false  # private wireguard-go sockets (several gateways sharing one filesystem)
gatewayReplicas: 1     # one per gateway-capable node
image: isthmus:0.1.0   # the one image of every component
# This cluster's broker certificate: the three PEMs, or the name of an existing Secret in
# isthmus-system holding ca.crt, tls.crt and tls.key (as \`isthmus join\` stores it).
brokerClient:
  existingSecret: ""
  caCrt: ""
  tlsCrt: ""
  tlsKey: ""
`;

/** host:port with an IPv4 address, an IPv6 address in brackets or a DNS name (parseBrokerAddresses checks it fully where it is used). */
const HOST_PORT = '^(\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$';
const RFC1123 = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
const SCHEMA = {
  $schema: 'https://json-schema.org/draft-07/schema#',
  type: 'object',
  additionalProperties: false,
  required: ['clusterId', 'brokers', 'cableDriver', 'podCidrs', 'serviceCidrs', 'image', 'brokerClient'],
  properties: {
    clusterId: { type: 'string', pattern: RFC1123, description: 'this cluster\'s id, an RFC-1123 label' },
    brokers: { type: 'array', items: { type: 'string', pattern: HOST_PORT }, description: 'the broker\'s addresses, host:port each (broker-info.json\'s brokers)' },
    broker: { type: 'string', pattern: `^(${HOST_PORT.slice(1, -1)})?$`, description: 'one address of the broker, host:port, used when brokers is empty (older values)' },
    podBroker: { type: 'string', pattern: '^([^\\s]+:[0-9]{1,5})?$', description: 'where pods dial the broker, host:port ("": brokers)' },
    cableDriver: { type: 'string', enum: ['wireguard', 'ipsec', 'vxlan'] },
    podCidrs: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[0-9a-fA-F:.]+/[0-9]{1,3}$' } },
    serviceCidrs: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[0-9a-fA-F:.]+/[0-9]{1,3}$' } },
    publicIp: { type: 'string', pattern: '^([0-9a-fA-F:.]+)?$' },
    natTraversal: { type: 'boolean' },
    privateSockets: { type: 'boolean' },
    gatewayReplicas: { type: 'integer', minimum: 1 },
    image: { type: 'string', minLength: 1 },
    brokerClient: {
      type: 'object',
      additionalProperties: false,
      properties: {
        existingSecret: { type: 'string' }, caCrt: { type: 'string' }, tlsCrt: { type: 'string' }, tlsKey: { type: 'string' },
      },
    },
  },
};

/** The chart's files (path under CHART_DIR → content), from deploy/ as this checkout has it. */
export async function chartFiles(appVersion: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  files.set('Chart.yaml', `${HEADER}apiVersion: v2\nname: isthmus\ndescription: Isthmus for one cluster — what \`isthmus join\` installs (the plain manifests are in deploy/)\ntype: application\nversion: ${appVersion}\nappVersion: "${appVersion}"\n`);
  files.set('values.yaml', HEADER + VALUES);
  files.set('values.schema.json', `${JSON.stringify(SCHEMA, null, 2)}\n`);
  files.set('templates/_helpers.tpl', HELPERS);
  files.set('templates/NOTES.txt', NOTES);
  for (const crd of JOIN_CRDS) files.set(`crds/${crd}.yaml`, yaml(await manifest(`crds/${crd}.json`)));
  files.set('templates/namespace.yaml', yaml(await manifest('namespace.yaml')));
  const rbac = (await Promise.all(JOIN_RBAC.map((f) => manifest(f)))).flat();
  files.set('templates/rbac.yaml', yaml(rbac));
  const secret = opaqueSecret(CLIENT_SECRET, NS, {});
  secret.data = { 'ca.crt': ph('caCrt'), 'tls.crt': ph('tlsCrt'), 'tls.key': ph('tlsKey') };
  files.set('templates/broker-client-secret.yaml', `${CHECK_CREDENTIALS}${yaml([secret])}{{- end }}\n`);
  const property: Obj = { apiVersion: 'about.k8s.io/v1alpha1', kind: 'ClusterProperty', metadata: { name: 'cluster.clusterset.k8s.io' }, spec: { value: ph('clusterId') } };
  files.set('templates/clusterproperty.yaml', yaml([property]));
  const gw = await manifest('gateway/deployment.yaml');
  const mcs = await manifest('mcs-api/deployment.yaml');
  const gwConfig = gatewayConfigMap(pick(gw, 'ConfigMap', 'isthmus-gateway'), PLACEHOLDERS);
  gwConfig.data = { ...gwConfig.data, FORCE_NAT: ph('natTraversal'), PRIVATE_SOCKETS: ph('privateSockets') };
  const mcsConfig = mcsConfigMap(pick(mcs, 'ConfigMap', 'isthmus-mcs'), PLACEHOLDERS);
  files.set('templates/configmaps.yaml', yaml([gwConfig, mcsConfig]));
  // ipsec: the Deployment join makes for it (the Secret IPSEC_SECRET with each gateway node's certificate mounted)
  const [plain, ipsec] = (['wireguard', 'ipsec'] as const).map((driver) => {
    const o = brokerSecretName(workload(pick(gw, 'Deployment', 'isthmus-gateway'), { ...PLACEHOLDERS, cableDriver: driver }));
    (o.spec as { replicas: unknown }).replicas = ph('gatewayReplicas');
    return yaml([o]);
  });
  files.set('templates/gateway.yaml', `{{- if eq .Values.cableDriver "ipsec" }}\n${ipsec ?? ''}{{- else }}\n${plain ?? ''}{{- end }}\n`);
  files.set('templates/route-agent.yaml', yaml((await manifest('route-agent/daemonset.yaml')).map((o) => workload(o, PLACEHOLDERS))));
  files.set('templates/mcs-api.yaml', yaml(mcs.filter((x) => x.kind !== 'ConfigMap').map((o) => (o.kind === 'Deployment' ? brokerSecretName(workload(o, PLACEHOLDERS)) : o))));
  const policy = (await Promise.all(POLICY_WORKLOADS.map((f) => manifest(f)))).flat();
  files.set('templates/policy.yaml', yaml(policy.map((o) => brokerSecretName(workload(o, PLACEHOLDERS)))));
  return files;
}
