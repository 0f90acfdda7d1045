/** HTTP/1.1 heads as the application proxy's fast path reads them: limits, strict parsing, the fields it drops. */

/** Most bytes of a request head (Node's default, 16 KiB) and of an answer's head. */
export const MAX_HEAD = 16 * 1024;
export const MAX_ANSWER_HEAD = 64 * 1024;

export const DIGITS = /^\d{1,15}$/;
export const HEAD_END = Buffer.from('\r\n\r\n');

/** Request headers that stay with this hop (the framing ones are checked and passed on as they are). */
export const REQUEST_DROP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'proxy-connection',
  'forwarded', 'x-real-ip', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-prefix', 'x-tessera-proxy-secret']);
export const RESPONSE_DROP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'proxy-connection']);

/** A header field: its name as sent, in lower case, and its value without surrounding whitespace. */
export type Field = [name: string, lower: string, value: string];

/**
 * Anything a head may not have, checked over the whole head at once: a control
 * character, CR or LF other than as a CRLF pair, a line folded onto the one before
 * (obs-fold), a field line that does not begin with a name and a colon (so no
 * whitespace before the colon either).
 */
const HEAD_BAD = /[^\t\x20-\x7e\x80-\xff\r\n]|\r(?!\n)|(?<!\r)\n|\n[\t ]|\r\n(?![!#$%&'*+.^_`|~0-9A-Za-z-]+:)/;


/** Splits a head (without its final CRLF CRLF) into its first line and its fields; undefined when it is malformed. */
export function parseHead(head: string): { line: string; fields: Field[] } | undefined {
  if (HEAD_BAD.test(head)) return undefined;
  let at = head.indexOf('\r\n');
  if (at < 0) return { line: head, fields: [] };
  const line = head.slice(0, at);
  const fields: Field[] = [];
  while (at >= 0) {
    const start = at + 2;
    const next = head.indexOf('\r\n', start);
    const end = next < 0 ? head.length : next;
    const colon = head.indexOf(':', start);
    let a = colon + 1;
    let b = end;
    while (a < b && (head.charCodeAt(a) === 32 || head.charCodeAt(a) === 9)) a++;
    while (b > a && (head.charCodeAt(b - 1) === 32 || head.charCodeAt(b - 1) === 9)) b--;
    const name = head.slice(start, colon);
    fields.push([name, name.toLowerCase(), head.slice(a, b)]);
    at = next;
  }
  return { line, fields };
}
