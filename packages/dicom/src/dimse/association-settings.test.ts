import { describe, expect, it } from 'vitest';
import { resolveSettings } from './association-settings.ts';

const BASE = { host: '127.0.0.1', port: 0, aeTitle: 'TESSERA', onStore: async () => ({ status: 0 }) };

describe('resolveSettings', () => {
  it('fills in the defaults', () => {
    expect(resolveSettings({ ...BASE, aeTitle: ' TESSERA ' })).toMatchObject({
      aeTitle: 'TESSERA',
      maxPduLength: 1024 * 1024,
      maxDatasetBytes: 2 ** 31 - 1,
      idleTimeoutMs: 60_000,
    });
  });

  it.each([
    [{ aeTitle: '' }, /AE title/],
    [{ aeTitle: 'SEVENTEEN_CHARS_X' }, /AE title/],
    [{ aeTitle: 'BACK\\SLASH' }, /AE title/],
    [{ maxPduLength: 1024 }, /max PDU length 1024 must be an integer from 4096/],
    [{ maxDatasetBytes: -1 }, /max dataset size -1/],
    [{ idleTimeoutMs: 0 }, /idle timeout/],
    [{ idleTimeoutMs: 2 ** 31 }, /idle timeout/],
  ])('refuses %o', (override, message) => {
    expect(() => resolveSettings({ ...BASE, ...override })).toThrow(message);
  });
});
