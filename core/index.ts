// The public face of core/: the only folder every part may import.
// Kubernetes helpers (informers, kubeconfig) are in core/k8s.ts: they load
// @kubernetes/client-node, which costs half a second, so only parts that talk to
// Kubernetes pay for it.
export * from './errors.ts';
export * from './log.ts';
export * from './config.ts';
export * from './clock.ts';
export * from './backoff.ts';
export * from './exec.ts';
export * from './lifecycle.ts';
export * from './cidr.ts';
export * from './unicast.ts';
export * from './x509.ts';
export * from './workqueue.ts';
export * from './netns-runner.ts';
export * from './wgkey.ts';
export * from './serial.ts';
export * from './metrics-server.ts';
