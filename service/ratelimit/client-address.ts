import { isIPv4, isIPv6 } from 'node:net';

/** Appends the 16-bit groups of `part` (colon-separated; a dotted IPv4 group counts as two). */
function pushGroups(part: string, into: number[]): void {
  if (part === '') return;
  for (const group of part.split(':')) {
    if (group.includes('.')) {
      const [a, b, c, d] = group.split('.').map(Number) as [number, number, number, number];
      into.push((a << 8) | b, (c << 8) | d);
    } else {
      into.push(parseInt(group, 16));
    }
  }
}

/** The eight 16-bit groups of a valid IPv6 address, `::` expanded and an embedded IPv4 tail converted. */
function groups(address: string): number[] {
  const head: number[] = [];
  const gap = address.indexOf('::');
  if (gap === -1) {
    pushGroups(address, head);
    return head;
  }
  const tail: number[] = [];
  pushGroups(address.slice(0, gap), head);
  pushGroups(address.slice(gap + 2), tail);
  while (head.length + tail.length < 8) head.push(0);
  return head.concat(tail);
}

/** How a dual-stack socket (the service listens on ::) reports every IPv4 client. */
const MAPPED_PREFIX = '::ffff:';

/**
 * The rate-limit identity of a network client: an IPv4 address as is, an IPv6 address by its /64.
 * A /64 is what one subscriber or host gets, and rotating addresses inside it costs nothing, so a
 * full IPv6 address would give every client as many buckets as it likes. IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d, what a dual-stack socket reports) are their IPv4 address.
 */
export function clientAddressKey(ip: string): string {
  const zone = ip.indexOf('%');
  const address = zone === -1 ? ip : ip.slice(0, zone);
  if (isIPv4(address)) return address;
  // The common case on a dual-stack socket, answered without parsing groups (this runs per request).
  if (address.startsWith(MAPPED_PREFIX)) {
    const v4 = address.slice(MAPPED_PREFIX.length);
    if (isIPv4(v4)) return v4;
  }
  if (!isIPv6(address)) return address;
  const g = groups(address);
  const [, , , , , mapped = 0, high = 0, low = 0] = g;
  if (g.slice(0, 5).every((x) => x === 0) && mapped === 0xffff) return [high >> 8, high & 255, low >> 8, low & 255].join('.');
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}
