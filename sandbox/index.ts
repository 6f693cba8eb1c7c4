// The public face of sandbox/: a real multi-cluster lab on one Linux machine.
export { Sandbox, type UpOptions, type ClusterStatus } from './sandbox.ts';
export { planSandbox, DEFAULT_PORT_BASE, MAX_CLUSTERS, PROXY_MODES, type ClusterPlan, type ProxyMode, type SandboxOptions } from './plan.ts';
export { sandboxDir, kubeconfigPath, readState, type SandboxState } from './state.ts';
export { kubeBinDir, etcdBinary, pins, projectRoot } from './versions.ts';
export { clientPodManifest, echoManifest, runDemo } from './demo.ts';
