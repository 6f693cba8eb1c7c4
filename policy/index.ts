// The public face of policy/: ClusterSetNetworkPolicy — evaluation, compilation to the
// node's nftables table, the controller (broker side), the node agent and the audit log.
export { AUTHORS_ANNOTATION, evaluate, resolve, type Flow, type PolicyInput, type ReceiverView, type Resolved, type Verdict } from './evaluate.ts';
export { POLICY_TABLE, compile, type CompileInput, type LocalPod, type RemotePod, type Ruleset } from './compile.ts';
export { NftPolicyTable } from './nft.ts';
export { IptablesPolicyTable, choosePolicyTable } from './ipt.ts';
export type { AuditElement, PolicyTable } from './table.ts';
export { AuditLog, type AuditLine } from './audit.ts';
export { PolicyController, type PolicyControllerConfig } from './controller.ts';
export { PolicyAgent, type PolicyAgentConfig } from './agent.ts';
export { PolicyMetrics } from './metrics.ts';
export { identitySets } from './identities.ts';
export { applyPolicies, parsePodRef, policiesOfManifest, testFlow } from './ops.ts';
