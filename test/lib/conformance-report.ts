/**
 * Reading the upstream MCS conformance suite's Ginkgo JSON report (-ginkgo.json-report):
 * one entry per spec (Ginkgo "It" leaf), named by its full text (container texts and the
 * leaf's, space-joined, as Ginkgo and the suite's report.yaml name it), with the labels it
 * carries (its own and its containers') and its outcome.
 *
 * Pure: no I/O. Invariants: every It leaf of every suite report gives exactly one entry,
 * in report order; anything that is not a spec (BeforeSuite, ReportAfterSuite, …) gives
 * none; a report that is not Ginkgo's shape throws, saying what is wrong.
 */
export type SpecState = 'passed' | 'failed' | 'skipped' | 'pending' | 'panicked' | 'interrupted' | 'aborted' | 'timedout' | 'invalid';

export interface SpecOutcome {
  name: string;
  labels: string[];
  state: SpecState;
  /** Ginkgo's failure message (empty when it passed), with the suite's non-conformance note when it gave one. */
  message: string;
  runTimeMs: number;
}

interface ReportEntry { Name?: string; Value?: { Representation?: string; AsJSON?: string } }
interface GinkgoSpecReport {
  ContainerHierarchyTexts?: string[] | null;
  ContainerHierarchyLabels?: (string[] | null)[] | null;
  LeafNodeType?: string;
  LeafNodeText?: string;
  LeafNodeLabels?: string[] | null;
  State?: string;
  RunTime?: number;
  Failure?: { Message?: string; FailureNodeType?: string; Location?: { FileName?: string; LineNumber?: number } };
  ReportEntries?: ReportEntry[] | null;
}

const STATES = new Set<string>(['passed', 'failed', 'skipped', 'pending', 'panicked', 'interrupted', 'aborted', 'timedout', 'invalid']);

function entryValue(e: ReportEntry): string {
  const v = e.Value;
  if (v?.AsJSON !== undefined && v.AsJSON !== '') {
    try {
      const parsed = JSON.parse(v.AsJSON) as unknown;
      if (typeof parsed === 'string') return parsed;
    } catch {
      /* not JSON: the representation below */
    }
  }
  return v?.Representation ?? '';
}

/** The specs of a Ginkgo JSON report (the file's parsed content). */
export function specOutcomes(report: unknown): SpecOutcome[] {
  if (!Array.isArray(report)) throw new Error('not a Ginkgo JSON report: expected an array of suite reports');
  const out: SpecOutcome[] = [];
  for (const suite of report as { SpecReports?: GinkgoSpecReport[] | null }[]) {
    if (typeof suite !== 'object' || suite === null) throw new Error('not a Ginkgo JSON report: a suite report is not an object');
    for (const s of suite.SpecReports ?? []) {
      if (s.LeafNodeType !== 'It') continue;
      const name = [...(s.ContainerHierarchyTexts ?? []), s.LeafNodeText ?? ''].map((t) => t.trim()).filter((t) => t !== '').join(' ');
      const labels = [...new Set([...(s.ContainerHierarchyLabels ?? []).flatMap((l) => l ?? []), ...(s.LeafNodeLabels ?? [])])].sort();
      const state = s.State ?? '';
      if (!STATES.has(state)) throw new Error(`not a Ginkgo JSON report: spec "${name}" has state "${state}"`);
      const note = (s.ReportEntries ?? []).filter((e) => e.Name === 'non-conformant').map(entryValue).filter((m) => m !== '');
      const failure = (s.Failure?.Message ?? '').trim();
      const where = s.Failure?.Location?.FileName === undefined ? '' : ` (${s.Failure.Location.FileName.split('/').pop() ?? ''}:${s.Failure.Location.LineNumber ?? 0})`;
      const message = state === 'passed' ? '' : [failure === '' ? '' : failure + where, ...note.map((m) => `non-conformant: ${m}`)].filter((m) => m !== '').join('\n');
      out.push({ name, labels, state: state as SpecState, message, runTimeMs: Math.round((s.RunTime ?? 0) / 1e6) });
    }
  }
  return out;
}
