import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../core/index.ts';
import { errorCode } from '../core/testing.ts';
import { checkName, exportOutcome, formatExports, formatImports } from './ops.ts';
import type { ServiceExport, ServiceImport } from './types.ts';

const se = (conds: [string, string, string][]): ServiceExport => ({
  metadata: { name: 'echo', namespace: 'demo' },
  status: { conditions: conds.map(([type, status, reason]) => ({ type, status, reason, message: `m-${reason}`, lastTransitionTime: new Date(0) })) },
});

test('export outcome: ready, ready with a conflict, invalid, undecided', () => {
  assert.equal(exportOutcome(se([['Valid', 'True', 'Valid'], ['Ready', 'True', 'Exported'], ['Conflict', 'False', 'NoConflicts']])), { state: 'ready', message: 'exported' });
  assert.match(exportOutcome(se([['Valid', 'True', 'Valid'], ['Ready', 'True', 'Exported'], ['Conflict', 'True', 'PortConflict']]))?.message ?? '', 'PortConflict');
  assert.equal(exportOutcome(se([['Valid', 'False', 'NoService']]))?.state, 'invalid');
  assert.is(exportOutcome(se([['Valid', 'True', 'Valid'], ['Ready', 'False', 'Pending']])), undefined);
  assert.is(exportOutcome(undefined), undefined);
});

test('tables: exports with their conditions, imports with IPs, ports and clusters', () => {
  const t = formatExports([se([['Valid', 'True', 'Valid'], ['Ready', 'True', 'Exported'], ['Conflict', 'True', 'PortConflict']])], 'table');
  assert.equal(t.split('\n').map((l) => l.split(/\s+/).join(' ')), ['NAMESPACE NAME VALID READY CONFLICT', 'demo echo True True True(PortConflict)', '']);
  const si: ServiceImport = { metadata: { name: 'echo', namespace: 'demo' }, spec: { type: 'ClusterSetIP', ips: ['10.101.0.7'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }, status: { clusters: [{ cluster: 'c2' }, { cluster: 'c3' }] } };
  assert.match(formatImports([si], 'table'), /demo\s+echo\s+ClusterSetIP\s+10\.101\.0\.7\s+http:80\/TCP\s+c2,c3/);
  assert.equal(JSON.parse(formatImports([si], 'json')).items, [si]);
  assert.match(formatImports([si], 'yaml'), /kind: List/);
});

test('names must be RFC-1123 labels', () => {
  checkName('service', 'echo-1');
  for (const bad of ['', 'Echo', 'a_b', '-a', 'a'.repeat(64)]) assert.is(errorCode(() => checkName('service', bad)), ErrorCodes.INVALID_ARGUMENT, bad);
});

test.run();
