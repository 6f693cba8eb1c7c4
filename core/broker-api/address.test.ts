import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from '../errors.ts';
import { brokerTargets, formatBrokerAddress, parseBrokerAddresses } from './address.ts';
import { BrokerClient } from './client.ts';

const targets = (raw: string | readonly string[]): string[] => brokerTargets(parseBrokerAddresses(raw));
const noCredentials = (): never => {
  throw new Error('not used');
};

test('one address is one target, as before (IPv4, IPv6, a DNS name)', () => {
  assert.equal(targets('10.0.0.1:30974'), ['ipv4:10.0.0.1:30974']);
  assert.equal(targets('[fd00::1]:30974'), ['ipv6:[fd00::1]:30974']);
  assert.equal(targets('broker.example.net:7443'), ['dns:broker.example.net:7443']);
  assert.equal(targets('broker.example.net.:7443'), ['dns:broker.example.net.:7443'], 'a fully qualified name');
});

test('IPv4 addresses share one target in the order given; so do IPv6 addresses; each name is its own', () => {
  assert.equal(targets('10.0.0.1:30974,10.0.0.2:30974, 10.0.0.3:30975'), ['ipv4:10.0.0.1:30974,10.0.0.2:30974,10.0.0.3:30975']);
  assert.equal(targets(['[fd00::2]:1', '[fd00::1]:1']), ['ipv6:[fd00::2]:1,[fd00::1]:1']);
  assert.equal(targets('[fd00::1]:7443,10.0.0.1:7443,b.example:7443,[fd00::2]:7443,10.0.0.2:7443,a.example:7443'),
    ['ipv6:[fd00::1]:7443,[fd00::2]:7443', 'ipv4:10.0.0.1:7443,10.0.0.2:7443', 'dns:b.example:7443', 'dns:a.example:7443']);
  assert.equal(targets(['10.0.0.1:1,10.0.0.2:1', '10.0.0.1:1', 'B.example:2', 'b.example:2']), ['ipv4:10.0.0.1:1,10.0.0.2:1', 'dns:B.example:2'], 'repeats dropped, the first kept');
});

test('parsed addresses keep host, port and family; formatting brackets IPv6', () => {
  const got = parseBrokerAddresses('10.0.0.1:30974,[fd00::1]:443,localhost:7443');
  assert.equal(got, [{ host: '10.0.0.1', port: 30974, family: 4 }, { host: 'fd00::1', port: 443, family: 6 }, { host: 'localhost', port: 7443, family: 0 }]);
  assert.equal(got.map(formatBrokerAddress), ['10.0.0.1:30974', '[fd00::1]:443', 'localhost:7443']);
});

test('bad addresses are refused with INVALID_ARGUMENT naming the entry', () => {
  const cases: [string | string[], RegExp][] = [
    ['', /none given/],
    [[], /none given/],
    ['10.0.0.1', /"10\.0\.0\.1" is not host:port/],
    ['10.0.0.1:30974,,10.0.0.2:30974', /an empty entry/],
    ['10.0.0.1:30974,', /an empty entry/],
    ['10.0.0.1:0', /port 0, outside 1-65535/],
    ['10.0.0.1:65536', /port 65536/],
    ['10.0.0.1:123456', /is not host:port/],
    ['10.0.0.256:7443', /not a valid IPv4 address/],
    ['1.2.3:7443', /not a valid IPv4 address/],
    ['fd00::1:7443', /IPv6 address without brackets/],
    ['fd00::1', /IPv6 address without brackets/],
    ['[10.0.0.1]:7443', /no IPv6 address/],
    ['[fe80::1%eth0]:7443', /zone ids/],
    ['bro ker:7443', /neither an IP address nor a DNS name/],
    ['-broker:7443', /neither an IP address nor a DNS name/],
    ['broker_1.example:7443', /neither an IP address nor a DNS name/],
    [':7443', /neither an IP address nor a DNS name/],
    ['http://broker:7443', /is not host:port/],
    ['10.0.0.1:7443;10.0.0.2:7443', /is not host:port/],
  ];
  for (const [raw, message] of cases) {
    try {
      parseBrokerAddresses(raw, '--broker');
      assert.unreachable(`${JSON.stringify(raw)} was accepted`);
    } catch (err) {
      assert.instance(err, IsthmusError, JSON.stringify(raw));
      assert.is((err as IsthmusError).code, ErrorCodes.INVALID_ARGUMENT);
      assert.match((err as IsthmusError).message, /^--broker: /);
      assert.match((err as IsthmusError).message, message, JSON.stringify(raw));
    }
  }
});

test('a client takes a list, says what it dials, and refuses a bad one when made', () => {
  const c = new BrokerClient({ address: '10.0.0.1:30974, 10.0.0.2:30974,[fd00::1]:30974', credentials: noCredentials });
  assert.equal(c.addresses, ['10.0.0.1:30974', '10.0.0.2:30974', '[fd00::1]:30974']);
  assert.is(c.address, '10.0.0.1:30974,10.0.0.2:30974,[fd00::1]:30974');
  assert.is(c.target, 'ipv4:10.0.0.1:30974,10.0.0.2:30974');
  c.close();
  assert.throws(() => new BrokerClient({ address: 'broker', credentials: noCredentials }), /broker address: "broker" is not host:port/);
});

test.run();
