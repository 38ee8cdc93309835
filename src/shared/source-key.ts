import * as net from "node:net";

/**
 * The source a connection is counted against: an IPv4 address (also when
 * IPv4-mapped), or the /64 prefix of an IPv6 address (one host or one
 * customer usually holds a whole /64, so counting single IPv6 addresses would
 * cap nothing).
 *
 * @internal
 */
export function sourceKey(address: string): string {
  const plain = address.replace(/%.*$/, ""); // zone id (fe80::1%eth0)
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(plain);
  if (mapped) return mapped[1]!;
  if (!net.isIPv6(plain)) return plain;
  const [head = "", tail] = plain.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  // An embedded IPv4 tail (::1.2.3.4) takes two groups; it never reaches the first four unless the address is odd.
  const rightGroups = right.reduce((n, g) => n + (g.includes(".") ? 2 : 1), 0);
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - rightGroups).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => (g.includes(".") ? g : Number.parseInt(g, 16).toString(16))).join(":")}::/64`;
}
