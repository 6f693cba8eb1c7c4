// The public face of core/: the only folder every part may import.
export * from './errors.ts';
export * from './log.ts';
export * from './config.ts';
export * from './clock.ts';
export * from './backoff.ts';
export * from './exec.ts';
export * from './lifecycle.ts';
export * from './cidr.ts';
export * from './x509.ts';
export * from './workqueue.ts';
export * from './informer.ts';
export * from './kube.ts';
