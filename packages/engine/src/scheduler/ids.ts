import { randomBytes } from 'node:crypto';

let lastMs = 0;
let seq = 0;

/**
 * Sortable, URL-safe ids such as `r-mwucl8qz-0003a1f2`: prefix, ms timestamp in base 36,
 * then a per-millisecond sequence (so ids made in the same ms sort in creation order)
 * and 4 random hex digits (so two processes never collide).
 */
export function newId(prefix: 'j' | 'r'): string {
  const now = Date.now();
  seq = now === lastMs ? seq + 1 : 0;
  lastMs = now;
  return `${prefix}-${now.toString(36)}-${seq.toString(36).padStart(4, '0')}${randomBytes(2).toString('hex')}`;
}
