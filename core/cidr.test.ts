import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  cidrContains,
  cidrSize,
  cidrsOverlap,
  findOverlap,
  formatCidr,
  formatIp,
  nthAddress,
  parseCidr,
  parseIp,
  subnets,
} from './cidr.ts';
import { ErrorCodes, IsthmusError } from './errors.ts';

function throwsCode(fn: () => unknown, code: string, match?: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, IsthmusError);
    assert.is((err as IsthmusError).code, code);
    if (match) assert.match((err as IsthmusError).message, match);
    return;
  }
  assert.unreachable('expected a throw');
}

test('parseIp: valid addresses round-trip to canonical text', () => {
  const table: [string, 4 | 6, bigint, string][] = [
    ['0.0.0.0', 4, 0n, '0.0.0.0'],
    ['255.255.255.255', 4, 0xffffffffn, '255.255.255.255'],
    ['10.0.0.1', 4, 0x0a000001n, '10.0.0.1'],
    ['192.168.100.200', 4, 0xc0a864c8n, '192.168.100.200'],
    ['::', 6, 0n, '::'],
    ['::1', 6, 1n, '::1'],
    ['1::', 6, 1n << 112n, '1::'],
    ['FD00::1', 6, (0xfd00n << 112n) | 1n, 'fd00::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', 6, (0x20010db8n << 96n) | 1n, '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', 6, (0x20010db8n << 96n) | (1n << 48n) | 1n, '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', 6, 0x20010db8000000010001000100010001n, '2001:db8:0:1:1:1:1:1'],
    ['1:0:0:2:0:0:0:3', 6, 0x00010000000000020000000000000003n, '1:0:0:2::3'],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 6, (1n << 128n) - 1n, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['::ffff:1.2.3.4', 6, 0xffff01020304n, '::ffff:1.2.3.4'],
    ['::FFFF:0102:0304', 6, 0xffff01020304n, '::ffff:1.2.3.4'],
    ['::1.2.3.4', 6, 0x01020304n, '::102:304'],
    ['64:ff9b::192.0.2.33', 6, (0x64ff9bn << 96n) | 0xc0000221n, '64:ff9b::c000:221'],
    ['1:2:3:4:5:6:1.2.3.4', 6, 0x00010002000300040005000601020304n, '1:2:3:4:5:6:102:304'],
  ];
  for (const [input, family, value, canonical] of table) {
    const got = parseIp(input);
    assert.is(got.family, family, input);
    assert.is(got.value, value, input);
    assert.is(formatIp(family, value), canonical, input);
    assert.equal(parseIp(canonical), got, canonical);
  }
});

test('parseIp: rejects bad input and names it', () => {
  const bad = [
    '',
    ' 10.0.0.1',
    '10.0.0.1 ',
    '10.0.0',
    '10.0.0.0.1',
    '10.0.0.256',
    '10.0.0.-1',
    '10..0.1',
    '010.0.0.1',
    '10.0.0.01',
    '0x10.0.0.1',
    '1e1.0.0.1',
    ':',
    ':::',
    '1:::2',
    '1::2::3',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1::2:3:4:5:6:7:8',
    '12345::1',
    'g::1',
    ':1::2',
    '1::2:',
    'fe80::1%eth0',
    '::ffff:1.2.3',
    '::ffff:01.2.3.4',
    '::1.2.3.4:5',
    '1:2:3:4:5:6:7:1.2.3.4',
    ':1.2.3.4',
    '10.0.0.0/8',
  ];
  for (const s of bad) throwsCode(() => parseIp(s), ErrorCodes.INVALID_ARGUMENT, new RegExp(`"${s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"`));
  throwsCode(() => parseIp('010.0.0.1'), ErrorCodes.INVALID_ARGUMENT, /leading zeros/);
  throwsCode(() => parseIp('fe80::1%eth0'), ErrorCodes.INVALID_ARGUMENT, /zone/);
});

test('formatIp: RFC 5952 rules and range checks', () => {
  // A single zero group is not shortened; the first of equal runs wins; lowercase.
  assert.is(formatIp(6, parseIp('2001:db8:0:1:1:1:1:1').value), '2001:db8:0:1:1:1:1:1');
  assert.is(formatIp(6, parseIp('2001:0:0:1:0:0:1:1').value), '2001::1:0:0:1:1');
  assert.is(formatIp(6, parseIp('ABCD:EF01::').value), 'abcd:ef01::');
  assert.is(formatIp(6, 1n << 16n), '::1:0');
  throwsCode(() => formatIp(4, 1n << 32n), ErrorCodes.INVALID_ARGUMENT);
  throwsCode(() => formatIp(4, -1n), ErrorCodes.INVALID_ARGUMENT);
  throwsCode(() => formatIp(6, 1n << 128n), ErrorCodes.INVALID_ARGUMENT);
});

test('parseCidr / formatCidr: valid blocks', () => {
  const table: [string, 4 | 6, bigint, number, string][] = [
    ['0.0.0.0/0', 4, 0n, 0, '0.0.0.0/0'],
    ['10.0.0.0/8', 4, 0x0a000000n, 8, '10.0.0.0/8'],
    ['10.244.1.0/24', 4, 0x0af40100n, 24, '10.244.1.0/24'],
    ['10.0.0.1/32', 4, 0x0a000001n, 32, '10.0.0.1/32'],
    ['255.255.255.255/32', 4, 0xffffffffn, 32, '255.255.255.255/32'],
    ['::/0', 6, 0n, 0, '::/0'],
    ['fd00::/8', 6, 0xfdn << 120n, 8, 'fd00::/8'],
    ['FD00:0:0:0::/64', 6, 0xfd00n << 112n, 64, 'fd00::/64'],
    ['::1/128', 6, 1n, 128, '::1/128'],
    ['::ffff:10.0.0.0/104', 6, 0xffff0a000000n, 104, '::ffff:10.0.0.0/104'],
  ];
  for (const [input, family, base, prefix, canonical] of table) {
    const c = parseCidr(input);
    assert.equal(c, { family, base, prefix }, input);
    assert.is(formatCidr(c), canonical, input);
  }
});

test('parseCidr: rejects malformed blocks, bad prefixes and host bits', () => {
  const table: [string, RegExp][] = [
    ['10.0.0.0', /expected address\/prefix/],
    ['10.0.0.0/', /invalid prefix/],
    ['10.0.0.0/8/8', /expected address\/prefix/],
    ['/8', /not a valid IP/],
    ['10.0.0.0/33', /prefixes are 0 to 32/],
    ['10.0.0.0/-1', /invalid prefix/],
    ['10.0.0.0/08', /invalid prefix/],
    ['10.0.0.0/ 8', /invalid prefix/],
    ['10.0.0.0/8.0', /invalid prefix/],
    ['::/129', /prefixes are 0 to 128/],
    ['010.0.0.0/8', /leading zeros/],
    ['10.0.0.1/8', /"10\.0\.0\.1\/8" has host bits set; did you mean 10\.0\.0\.0\/8\?/],
    ['1.1.1.1/0', /did you mean 0\.0\.0\.0\/0\?/],
    ['fd00::1/64', /did you mean fd00::\/64\?/],
    ['::1/0', /did you mean ::\/0\?/],
  ];
  for (const [input, re] of table) throwsCode(() => parseCidr(input), ErrorCodes.INVALID_ARGUMENT, re);
});

test('cidrsOverlap', () => {
  const table: [string, string, boolean][] = [
    ['10.0.0.0/8', '10.1.0.0/16', true],
    ['10.1.0.0/16', '10.0.0.0/8', true],
    ['10.0.0.0/16', '10.1.0.0/16', false],
    ['10.0.0.0/16', '10.0.0.0/16', true],
    ['0.0.0.0/0', '192.168.1.1/32', true],
    ['10.0.0.0/32', '10.0.0.1/32', false],
    ['10.0.0.0/31', '10.0.0.1/32', true],
    ['fd00::/64', 'fd00::1/128', true],
    ['fd00::/64', 'fd00:0:0:1::/64', false],
    ['::/0', '0.0.0.0/0', false],
    ['::ffff:10.0.0.0/104', '10.0.0.0/8', false],
  ];
  for (const [a, b, want] of table) assert.is(cidrsOverlap(parseCidr(a), parseCidr(b)), want, `${a} ${b}`);
});

test('cidrContains', () => {
  const table: [string, string | bigint, boolean][] = [
    ['10.0.0.0/8', '10.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['10.0.0.0/8', '9.255.255.255', false],
    ['0.0.0.0/0', '255.255.255.255', true],
    ['10.0.0.1/32', '10.0.0.1', true],
    ['10.0.0.1/32', '10.0.0.2', false],
    ['10.0.0.0/8', 0x0a000001n, true],
    ['10.0.0.0/8', 1n << 40n, false],
    ['0.0.0.0/0', -1n, false],
    ['fd00::/8', 'fdff:ffff::1', true],
    ['fd00::/8', 'fe00::', false],
    ['::/0', '10.0.0.1', false],
    ['0.0.0.0/0', '::1', false],
    ['::/0', (1n << 128n) - 1n, true],
  ];
  for (const [c, ip, want] of table) assert.is(cidrContains(parseCidr(c), ip), want, `${c} ${String(ip)}`);
  throwsCode(() => cidrContains(parseCidr('10.0.0.0/8'), '10.0.0'), ErrorCodes.INVALID_ARGUMENT);
});

test('cidrSize and nthAddress', () => {
  assert.is(cidrSize(parseCidr('0.0.0.0/0')), 1n << 32n);
  assert.is(cidrSize(parseCidr('10.0.0.0/24')), 256n);
  assert.is(cidrSize(parseCidr('10.0.0.1/32')), 1n);
  assert.is(cidrSize(parseCidr('::/0')), 1n << 128n);
  assert.is(cidrSize(parseCidr('::1/128')), 1n);
  const c = parseCidr('10.244.0.0/16');
  assert.is(nthAddress(c, 0), '10.244.0.0');
  assert.is(nthAddress(c, 1), '10.244.0.1');
  assert.is(nthAddress(c, 256n), '10.244.1.0');
  assert.is(nthAddress(c, 65535), '10.244.255.255');
  throwsCode(() => nthAddress(c, 65536), ErrorCodes.INVALID_ARGUMENT, /outside 10\.244\.0\.0\/16/);
  throwsCode(() => nthAddress(c, -1), ErrorCodes.INVALID_ARGUMENT);
  throwsCode(() => nthAddress(c, 1.5), ErrorCodes.INVALID_ARGUMENT);
  assert.is(nthAddress(parseCidr('::/0'), (1n << 128n) - 1n), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
  assert.is(nthAddress(parseCidr('fd00::/64'), 0x10n), 'fd00::10');
  assert.is(nthAddress(parseCidr('::1/128'), 0), '::1');
  throwsCode(() => nthAddress(parseCidr('::1/128'), 1), ErrorCodes.INVALID_ARGUMENT);
});

test('subnets', () => {
  const list = (pool: string, prefix: number): string[] => [...subnets(parseCidr(pool), prefix)].map(formatCidr);
  assert.equal(list('10.0.0.0/24', 26), ['10.0.0.0/26', '10.0.0.64/26', '10.0.0.128/26', '10.0.0.192/26']);
  assert.equal(list('10.0.0.0/24', 24), ['10.0.0.0/24']);
  assert.equal(list('10.0.0.0/31', 32), ['10.0.0.0/32', '10.0.0.1/32']);
  assert.equal(list('fd00::/63', 64), ['fd00::/64', 'fd00:0:0:1::/64']);
  assert.equal(list('::/127', 128), ['::/128', '::1/128']);
  // Lazy: the first few of a huge pool come out at once.
  const it = subnets(parseCidr('0.0.0.0/0'), 32);
  assert.equal(formatCidr(it.next().value as never), '0.0.0.0/32');
  assert.equal(formatCidr(it.next().value as never), '0.0.0.1/32');
  const first = subnets(parseCidr('::/0'), 16).next().value;
  assert.is(first === undefined ? '' : formatCidr(first), '::/16');
  // Throws on call, not on first iteration.
  throwsCode(() => subnets(parseCidr('10.0.0.0/16'), 8), ErrorCodes.INVALID_ARGUMENT, /choose a prefix from 16 to 32/);
  throwsCode(() => subnets(parseCidr('10.0.0.0/16'), 33), ErrorCodes.INVALID_ARGUMENT);
  throwsCode(() => subnets(parseCidr('fd00::/64'), 129), ErrorCodes.INVALID_ARGUMENT);
  throwsCode(() => subnets(parseCidr('10.0.0.0/16'), 24.5), ErrorCodes.INVALID_ARGUMENT);
});

test('findOverlap', () => {
  assert.equal(findOverlap(['10.0.0.0/16', '10.1.0.0/16'], ['192.168.0.0/16', '10.1.128.0/17']), ['10.1.0.0/16', '10.1.128.0/17']);
  assert.is(findOverlap(['10.0.0.0/16'], ['10.1.0.0/16', 'fd00::/8']), undefined);
  assert.is(findOverlap([], ['10.0.0.0/8']), undefined);
  assert.is(findOverlap(['10.0.0.0/8'], []), undefined);
  assert.equal(findOverlap(['fd00::/64'], ['fd00::/48']), ['fd00::/64', 'fd00::/48']);
  throwsCode(() => findOverlap(['10.0.0.0/16'], ['10.0.0.1/16']), ErrorCodes.INVALID_ARGUMENT, /host bits/);
  throwsCode(() => findOverlap(['nope'], []), ErrorCodes.INVALID_ARGUMENT, /"nope"/);
});

test.run();
