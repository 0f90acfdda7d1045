import { describe, expect, it } from 'vitest';
import { parseSenderNetwork, SenderMatcher } from './sender-address.ts';
import { checkAllowedSenders } from './sender-policies.ts';

const canonical = (text: string): string => {
  const p = parseSenderNetwork(text);
  if (!p.ok) throw new Error(`${text}: ${p.problem}`);
  return p.network.canonical;
};
const problem = (text: string): string => {
  const p = parseSenderNetwork(text);
  if (p.ok) throw new Error(`${text} parsed as ${p.network.canonical}`);
  return p.problem;
};
const matcher = (...entries: string[]): SenderMatcher =>
  new SenderMatcher(entries.map((e) => {
    const p = parseSenderNetwork(e);
    if (!p.ok) throw new Error(p.problem);
    return p.network;
  }));

describe('sender addresses and networks', () => {
  it('reads addresses and CIDR networks and writes them one way (RFC 5952 for IPv6)', () => {
    expect(canonical('10.1.2.3')).toBe('10.1.2.3');
    expect(canonical(' 10.1.2.3/32 ')).toBe('10.1.2.3');
    expect(canonical('10.1.0.0/16')).toBe('10.1.0.0/16');
    expect(canonical('0.0.0.0/0')).toBe('0.0.0.0/0');
    expect(canonical('::1')).toBe('::1');
    expect(canonical('0:0:0:0:0:0:0:1/128')).toBe('::1');
    expect(canonical('FD00::/8')).toBe('fd00::/8');
    expect(canonical('2001:0db8:0000:0000:0001:0000:0000:0001')).toBe('2001:db8::1:0:0:1');
    expect(canonical('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(canonical('::ffff:127.0.0.1')).toBe('::ffff:127.0.0.1');
    expect(canonical('::FFFF:7f00:1')).toBe('::ffff:127.0.0.1');
    expect(canonical('::/0')).toBe('::/0');
  });

  it('refuses what is not an address or a network, saying why', () => {
    expect(problem('')).toMatch(/empty/);
    expect(problem('10.1.2')).toMatch(/four numbers/);
    expect(problem('10.1.2.256')).toMatch(/256 is more than 255/);
    expect(problem('010.1.2.3')).toMatch(/leading zero/);
    expect(problem('10.1.2.3/33')).toMatch(/from 0 to 32/);
    expect(problem('10.1.2.3/')).toMatch(/prefix length/);
    expect(problem('10.0.0.0/8/8')).toMatch(/prefix length/);
    expect(problem('scanner.example.org')).toMatch(/not an IPv4 address/);
    expect(problem('1::2::3')).toMatch(/"::" may appear once/);
    expect(problem('1:2:3:4:5:6:7')).toMatch(/eight groups/);
    expect(problem('1:2:3:4:5:6:7:8::')).toMatch(/too many groups/);
    expect(problem('12345::')).toMatch(/"12345" is not a group/);
    expect(problem('fe80::1%eth0')).toMatch(/zone index/);
    expect(problem('fd00::/129')).toMatch(/from 0 to 128/);
    // A network with host bits set names the network it may have meant, and the single address.
    expect(problem('10.1.2.3/16')).toBe('10.1.2.3 has bits set past the /16 prefix: the network is 10.1.0.0/16 (or list the single address 10.1.2.3)');
    expect(problem('fd12::1/8')).toMatch(/the network is fd00::\/8/);
  });

  it('matches a peer by network, an IPv4-mapped IPv6 peer as its IPv4 address, and nothing it does not list', () => {
    const m = matcher('10.1.0.0/16', '192.0.2.7', 'fd00::/8', '::1');
    expect(m.match('10.1.200.3')).toBe('10.1.0.0/16');
    expect(m.match('10.2.0.1')).toBeUndefined();
    expect(m.match('192.0.2.7')).toBe('192.0.2.7');
    expect(m.match('192.0.2.8')).toBeUndefined();
    expect(m.match('::ffff:10.1.0.9')).toBe('10.1.0.0/16');
    expect(m.match('::FFFF:192.0.2.7')).toBe('192.0.2.7');
    expect(m.match('fdab::5')).toBe('fd00::/8');
    expect(m.match('fe80::1%eth0')).toBeUndefined();
    expect(m.match('::1')).toBe('::1');
    // 127.0.0.1 and ::1 are different addresses.
    expect(m.match('127.0.0.1')).toBeUndefined();
    expect(m.match('not an address')).toBeUndefined();
    expect(m.match('')).toBeUndefined();
    // Prefixes that do not end on a byte.
    const odd = matcher('172.16.0.0/12', '2001:db8:8000::/33');
    expect(odd.match('172.31.255.255')).toBe('172.16.0.0/12');
    expect(odd.match('172.32.0.0')).toBeUndefined();
    expect(odd.match('2001:db8:ffff::1')).toBe('2001:db8:8000::/33');
    expect(odd.match('2001:db8:7fff::1')).toBeUndefined();
  });

  it('lets 127.0.0.1 allow ::ffff:127.0.0.1, a mapped entry allow the IPv4 peer, and ::/0 allow every peer', () => {
    expect(matcher('127.0.0.1').match('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(matcher('::ffff:10.0.0.0/104').match('10.9.9.9')).toBe('::ffff:10.0.0.0/104');
    expect(matcher('::/0').match('192.0.2.1')).toBe('::/0');
    expect(matcher('0.0.0.0/0').match('::1')).toBeUndefined();
  });

  it('checks a whole list: each bad entry named by its place, duplicates after canonical form', () => {
    const { problems } = checkAllowedSenders([
      { address: '10.0.0.0/8', note: 'site' },
      { address: '10.0.0.0/33' },
      { address: '10.00.0.0/8' },
      { address: '10.0.0.0/8' },
      { address: 'fd00:0::/8' },
      { address: 'fd00::/8', note: 'x'.repeat(201) },
    ]);
    expect(problems.map((p) => p.where)).toEqual(['allowed[1].address', 'allowed[2].address', 'allowed[3].address', 'allowed[5].address', 'allowed[5].note']);
    expect(problems[2]!.message).toBe('"10.0.0.0/8" is 10.0.0.0/8, listed already as allowed[0]');
    expect(problems[3]!.message).toBe('"fd00::/8" is fd00::/8, listed already as allowed[4]');
    expect(checkAllowedSenders([{ address: '127.0.0.1' }, { address: '::1' }]).problems).toEqual([]);
  });
});
