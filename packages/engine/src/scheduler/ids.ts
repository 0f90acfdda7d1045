import { randomBytes } from 'node:crypto';

/** Time-sortable, URL-safe ids such as `r-mi3k2x1a-4f9c2b`: prefix, ms timestamp in base 36, 6 random hex digits. */
export function newId(prefix: 'j' | 'r'): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}
