import { isIPv4, isIPv6 } from 'node:net';

/** The eight 16-bit groups of an IPv6 address, `::` expanded and an embedded IPv4 tail converted. */
function groups(address: string): number[] {
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4) {
    const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -v4.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * The rate-limit identity of a network client: an IPv4 address as is, an IPv6 address by its /64.
 * A /64 is what one subscriber or host gets, and rotating addresses inside it costs nothing, so a
 * full IPv6 address would give every client as many buckets as it likes. IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d, what a dual-stack socket reports) are their IPv4 address.
 */
export function clientAddressKey(ip: string): string {
  const address = ip.replace(/%.*$/, '');
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return address;
  const g = groups(address);
  const [, , , , , mapped = 0, high = 0, low = 0] = g;
  if (g.slice(0, 5).every((x) => x === 0) && mapped === 0xffff) return [high >> 8, high & 255, low >> 8, low & 255].join('.');
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}
