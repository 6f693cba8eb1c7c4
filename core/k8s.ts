// core's Kubernetes helpers, a separate entry so that importing core/index.ts stays fast.
export * from './informer.ts';
export * from './kube.ts';
export * from './sync-loop.ts';
