/**
 * IPv4 and IPv6 addresses and CIDR networks, for the C-STORE sender allowlist: parsed
 * strictly (a typo in an allowlist must be refused, not read as some other network),
 * written back in one canonical form (RFC 5952 for IPv6), and matched against a peer's
 * address. Our own code rather than node:net's BlockList: the same parse decides what
 * is valid, what is a duplicate, how an entry is shown, and what it matches.
 */

/** A parsed address or network: its bytes (4 or 16) with the host bits zero, and the prefix length. */
export interface SenderNetwork {
  family: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
  /** `10.0.0.0/8`, `10.1.2.3` (a single address has no prefix), `fd00::/8`, `::1`. */
  canonical: string;
}

/** A parse: the network, or why the text is not one (a sentence that completes "`text` is not valid: ..."). */
export type ParsedNetwork = { ok: true; network: SenderNetwork } | { ok: false; problem: string };

const DEC_OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** Four dotted decimal numbers 0-255, no leading zeros (010 reads as octal to some tools, as ten to others). */
function parseV4(text: string): Uint8Array | string {
  const parts = text.split('.');
  if (parts.length !== 4) return 'an IPv4 address has four numbers separated by dots';
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!DEC_OCTET.test(p)) return /^0[0-9]/.test(p) ? `"${p}" has a leading zero, which some tools read as octal: write it without` : `"${p}" is not a number from 0 to 255`;
    const n = Number(p);
    if (n > 255) return `${p} is more than 255`;
    out[i] = n;
  }
  return out;
}

/** Eight groups of up to four hex digits, one `::` at most, an IPv4 tail allowed. */
function parseV6(text: string): Uint8Array | string {
  if (text.includes('%')) return 'a zone index (%eth0) cannot be allowed: list the address without it';
  const halves = text.split('::');
  if (halves.length > 2) return '"::" may appear once';
  const groupsOf = (part: string, last: boolean): number[] | string => {
    if (part === '') return [];
    const items = part.split(':');
    const out: number[] = [];
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (last && i === items.length - 1 && g.includes('.')) {
        const v4 = parseV4(g);
        if (typeof v4 === 'string') return `its IPv4 part: ${v4}`;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) {
        out.push(parseInt(g, 16));
      } else {
        return g === '' ? 'an empty group (":" where "::" or a number belongs)' : `"${g}" is not a group of 1 to 4 hex digits`;
      }
    }
    return out;
  };
  const head = groupsOf(halves[0]!, halves.length === 1);
  if (typeof head === 'string') return head;
  const tail = halves.length === 2 ? groupsOf(halves[1]!, true) : [];
  if (typeof tail === 'string') return tail;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return halves.length === 1 ? 'an IPv6 address has eight groups, or fewer with "::"' : 'too many groups for "::" to stand for any';
  const groups = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** True for ::ffff:0:0/96, IPv4 addresses as an IPv6 socket shows them. */
function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** RFC 5952: lower case, no leading zeros, the longest run of two or more zero groups as "::", an IPv4-mapped address with its IPv4 tail. */
function formatV6(b: Uint8Array): string {
  if (isV4Mapped(b)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function format(family: 4 | 6, bytes: Uint8Array): string {
  return family === 4 ? bytes.join('.') : formatV6(bytes);
}

/** Zeroes the bits after `prefix`; answers whether any was set. */
function maskInPlace(bytes: Uint8Array, prefix: number): boolean {
  let changed = false;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    const mask = keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    if ((bytes[i]! & ~mask & 0xff) !== 0) changed = true;
    bytes[i] = bytes[i]! & mask;
  }
  return changed;
}

/**
 * Parses an address (`10.1.2.3`, `::1`) or a network in CIDR notation (`10.1.0.0/16`,
 * `fd00::/8`). A network whose address has bits set past its prefix (`10.1.2.3/16`) is
 * refused, naming the network it may have meant: an allowlist entry should say what it
 * allows.
 */
export function parseSenderNetwork(input: string): ParsedNetwork {
  const text = input.trim();
  if (text === '') return { ok: false, problem: 'it is empty' };
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1);
  const family: 4 | 6 = addressText.includes(':') ? 6 : 4;
  const parsed = family === 4 ? parseV4(addressText) : parseV6(addressText);
  if (typeof parsed === 'string') return { ok: false, problem: `${family === 4 ? 'not an IPv4 address' : 'not an IPv6 address'} (${parsed})` };
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
      return { ok: false, problem: `the prefix length after "/" must be a whole number from 0 to ${bits} for an IPv${family} network, not "${prefixText}"` };
    }
    prefix = Number(prefixText);
  }
  const bytes = parsed;
  const original = format(family, bytes);
  if (maskInPlace(bytes, prefix)) {
    return { ok: false, problem: `${original} has bits set past the /${prefix} prefix: the network is ${format(family, bytes)}/${prefix} (or list the single address ${original})` };
  }
  const canonical = prefix === bits ? original : `${format(family, bytes)}/${prefix}`;
  return { ok: true, network: { family, bytes, prefix, canonical } };
}

/** The bytes of a peer's address as a socket reports it (`10.1.2.3`, `::1`, `::ffff:10.1.2.3`, `fe80::1%eth0`), or undefined. */
function peerBytes(address: string): { family: 4 | 6; bytes: Uint8Array } | undefined {
  const text = address.replace(/%.*$/, '');
  if (text.includes(':')) {
    const b = parseV6(text);
    return typeof b === 'string' ? undefined : { family: 6, bytes: b };
  }
  const b = parseV4(text);
  return typeof b === 'string' ? undefined : { family: 4, bytes: b };
}

function within(bytes: Uint8Array, net: SenderNetwork): boolean {
  const full = net.prefix >> 3;
  for (let i = 0; i < full; i++) if (bytes[i] !== net.bytes[i]) return false;
  const rest = net.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[full]! & mask) === net.bytes[full];
}

/**
 * A compiled list of networks, matched against one peer address per association. An
 * IPv4 peer is matched both as itself and as the IPv4-mapped IPv6 address a dual-stack
 * socket shows for it (::ffff:a.b.c.d), and a mapped peer as its IPv4 address: so
 * `127.0.0.1` allows `::ffff:127.0.0.1`, and `::/0` allows every peer.
 */
export class SenderMatcher {
  readonly #v4: SenderNetwork[];
  readonly #v6: SenderNetwork[];

  constructor(networks: readonly SenderNetwork[]) {
    this.#v4 = networks.filter((n) => n.family === 4);
    this.#v6 = networks.filter((n) => n.family === 6);
  }

  get size(): number {
    return this.#v4.length + this.#v6.length;
  }

  /** The canonical entry that allows `address`, or undefined (an unparseable address matches nothing). */
  match(address: string): string | undefined {
    const peer = peerBytes(address);
    if (!peer) return undefined;
    let v4: Uint8Array | undefined;
    let v6: Uint8Array;
    if (peer.family === 4) {
      v4 = peer.bytes;
      v6 = new Uint8Array(16);
      v6[10] = 0xff;
      v6[11] = 0xff;
      v6.set(peer.bytes, 12);
    } else {
      v6 = peer.bytes;
      if (isV4Mapped(v6)) v4 = v6.subarray(12);
    }
    if (v4) for (const n of this.#v4) if (within(v4, n)) return n.canonical;
    for (const n of this.#v6) if (within(v6, n)) return n.canonical;
    return undefined;
  }
}
