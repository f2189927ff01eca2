import { expect } from 'chai';
import fc from 'fast-check';
import { clientAddressKey } from '../../service/ratelimit/client-address.js';

describe('client address as a rate-limit key', () => {
  it('keys an IPv4 client by its address', () => {
    expect(clientAddressKey('203.0.113.7')).to.equal('203.0.113.7');
  });

  it('keys an IPv4 client seen through a dual-stack socket by its IPv4 address, however the mapping is spelled', () => {
    for (const ip of ['::ffff:203.0.113.7', '::FFFF:203.0.113.7', '0:0:0:0:0:ffff:203.0.113.7', '::ffff:cb00:7107']) {
      expect(clientAddressKey(ip), ip).to.equal('203.0.113.7');
    }
  });

  it('keys an IPv6 client by its /64, whatever the spelling and zone', () => {
    for (const ip of ['2001:db8:1:2::1', '2001:0db8:0001:0002:ffff:0:0:9', '2001:db8:1:2:a:b:1.2.3.4', '2001:db8:1:2::1%eth0']) {
      expect(clientAddressKey(ip), ip).to.equal('2001:db8:1:2::/64');
    }
  });

  it('gives every address of one /64 the same key, and addresses of different /64s different keys', () => {
    const group = fc.integer({ min: 0, max: 0xffff });
    const groups = fc.array(group, { minLength: 8, maxLength: 8 });
    fc.assert(fc.property(groups, groups, (a, b) => {
      // Full spelling; the mapped prefix (::ffff:0:0/96) is IPv4 and keyed otherwise.
      if (a.slice(0, 6).every((x, i) => x === (i === 5 ? 0xffff : 0))) return;
      const spell = (g: number[]) => g.map((x) => x.toString(16)).join(':');
      const sameNet = [...a.slice(0, 4), ...b.slice(4)];
      expect(clientAddressKey(spell(sameNet))).to.equal(clientAddressKey(spell(a)));
      const differ = a.slice(0, 4).some((x, i) => x !== b[i]);
      if (differ && !b.slice(0, 6).every((x, i) => x === (i === 5 ? 0xffff : 0))) {
        expect(clientAddressKey(spell(b))).not.to.equal(clientAddressKey(spell(a)));
      }
    }));
  });

  it('leaves anything that is not an IP address as it is', () => {
    expect(clientAddressKey('unknown')).to.equal('unknown');
  });
});
