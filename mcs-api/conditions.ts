import type { V1Condition } from '@kubernetes/client-node';
import type { Conflicts } from './merge.ts';

/**
 * The ServiceExport conditions of KEP-1645 / mcs-api v1beta1, pure:
 * - Valid: True/Valid; False/NoService (no Service of that name yet: a ServiceExport
 *   may come first); False/InvalidServiceType (ExternalName, never exported).
 * - Ready: True/Exported once the broker holds the export; False/Pending until then;
 *   False/Failed with the error when publishing failed; False/Pending when not valid.
 * - Conflict: True with the comma-joined reasons of the merge; False/NoConflicts.
 * lastTransitionTime changes only when a condition's status changes.
 */
export type Publication = { state: 'exported' } | { state: 'pending' } | { state: 'failed'; message: string };

export type Validity = { valid: true } | { valid: false; reason: 'NoService' | 'InvalidServiceType'; message: string };

export interface ConditionInput {
  validity: Validity;
  publication: Publication;
  /** undefined until the merged view is known. */
  conflicts: Conflicts | undefined;
  generation: number;
  now: Date;
  previous: readonly V1Condition[];
}

function cond(type: string, status: 'True' | 'False' | 'Unknown', reason: string, message: string, input: ConditionInput): V1Condition {
  const prev = input.previous.find((c) => c.type === type);
  const lastTransitionTime = prev !== undefined && prev.status === status ? prev.lastTransitionTime : input.now;
  return { type, status, reason, message, observedGeneration: input.generation, lastTransitionTime };
}

export function exportConditions(input: ConditionInput): V1Condition[] {
  const { validity, publication, conflicts } = input;
  const valid = validity.valid
    ? cond('Valid', 'True', 'Valid', 'the Service is exported', input)
    : cond('Valid', 'False', validity.reason, validity.message, input);
  let ready: V1Condition;
  if (!validity.valid) ready = cond('Ready', 'False', 'Pending', 'waiting for a valid Service to export', input);
  else if (publication.state === 'exported') ready = cond('Ready', 'True', 'Exported', 'the export is published to the clusterset broker', input);
  else if (publication.state === 'failed') ready = cond('Ready', 'False', 'Failed', publication.message, input);
  else ready = cond('Ready', 'False', 'Pending', 'publishing the export to the clusterset broker', input);
  let conflict: V1Condition;
  if (conflicts === undefined || !validity.valid) conflict = cond('Conflict', 'Unknown', 'Pending', 'the clusterset view of this Service is not known yet', input);
  else if (conflicts.reasons.length === 0) conflict = cond('Conflict', 'False', 'NoConflicts', 'every export of this Service agrees', input);
  else conflict = cond('Conflict', 'True', conflicts.reasons.join(','), conflicts.message, input);
  return [valid, ready, conflict];
}

/** True when two condition lists say the same (ignoring times): no status write is needed. */
export function sameConditions(a: readonly V1Condition[], b: readonly V1Condition[]): boolean {
  const key = (c: V1Condition): string => `${c.type}|${c.status}|${c.reason}|${c.message}|${c.observedGeneration ?? ''}`;
  const ka = a.map(key).sort();
  const kb = b.map(key).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}
