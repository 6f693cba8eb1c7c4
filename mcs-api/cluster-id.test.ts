import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../core/index.ts';
import { errorCode } from '../core/testing.ts';
import { CLUSTER_ID_PROPERTY, resolveClusterId } from './cluster-id.ts';

const props = (v?: string): Map<string, string> => new Map(v === undefined ? [] : [[CLUSTER_ID_PROPERTY, v]]);

test('the ClusterProperty wins; the configured id is the fallback', () => {
  assert.is(resolveClusterId(props('east'), undefined), 'east');
  assert.is(resolveClusterId(props('east'), 'east'), 'east');
  assert.is(resolveClusterId(props(), 'c1'), 'c1');
});

test('bad or missing ids are INVALID_CONFIG', () => {
  assert.is(errorCode(() => resolveClusterId(props(), undefined)), ErrorCodes.INVALID_CONFIG);
  assert.is(errorCode(() => resolveClusterId(props('East_1'), undefined)), ErrorCodes.INVALID_CONFIG);
  assert.is(errorCode(() => resolveClusterId(props('east'), 'west')), ErrorCodes.INVALID_CONFIG);
  assert.is(errorCode(() => resolveClusterId(props(), 'x'.repeat(64))), ErrorCodes.INVALID_CONFIG);
});

test.run();
