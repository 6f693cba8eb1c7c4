import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseFlags, udpReply } from './agnhost.ts';

test('flags: --k=v, --k v, bare booleans', () => {
  assert.equal([...parseFlags(['--http-port=8080', '--udp-port', '9', '--tcp', '--port', '42'])], [['http-port', '8080'], ['udp-port', '9'], ['tcp', 'true'], ['port', '42']]);
  assert.equal([...parseFlags(['--http=false'])], [['http', 'false']]);
});

test('netexec UDP replies', () => {
  assert.is(udpReply('hostname\n', 'web-0', '1.2.3.4:5'), 'web-0');
  assert.is(udpReply('echo hi there', 'h', 'c'), 'hi there');
  assert.is(udpReply('clientip', 'h', '1.2.3.4:5'), '1.2.3.4:5');
  assert.is(udpReply('what', 'h', 'c'), 'unknown command what');
});

test.run();
