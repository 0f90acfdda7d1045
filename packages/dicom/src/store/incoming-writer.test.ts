import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IncomingWriter } from './incoming-writer.ts';

let root: string | undefined;
afterEach(async () => {
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

const REL = 'c6ffbe24-7cdf-4976-960a-14381e329b9c/1.2.3/1.2.3.4/1.2.3.4.5.dcm';

describe('IncomingWriter: a file put in place before its index commit', () => {
  it('keeps a pending name until the index commits it (settle), and removes the file when the index does not take it (abandon)', async () => {
    root = await mkdtemp(join(tmpdir(), 'tessera-incoming-'));
    const w = new IncomingWriter({ root });
    w.write(REL, [Buffer.from('first')]);
    expect(readFileSync(join(root, REL), 'utf8')).toBe('first');
    expect(readdirSync(join(root, '.incoming'))).toHaveLength(1);
    w.settle(REL);
    expect(readdirSync(join(root, '.incoming'))).toEqual([]);
    expect(existsSync(join(root, REL))).toBe(true);

    const other = REL.replace('1.2.3.4.5.dcm', '1.2.3.4.6.dcm');
    w.write(other, [Buffer.from('second')]);
    w.abandon(other);
    expect(existsSync(join(root, other))).toBe(false);
    expect(readdirSync(join(root, '.incoming'))).toEqual([]);
  });

  it('after a crash between the two, the next start removes the file the index never took and keeps the one it took', async () => {
    root = await mkdtemp(join(tmpdir(), 'tessera-incoming-'));
    const w = new IncomingWriter({ root });
    const taken = REL;
    const lost = REL.replace('1.2.3.4.5.dcm', '1.2.3.4.7.dcm');
    w.write(taken, [Buffer.from('indexed before the crash')]);
    w.write(lost, [Buffer.from('not indexed before the crash')]);
    // The server dies here: neither is settled. The next start asks the index.
    const again = new IncomingWriter({ root });
    expect(again.recoverPending((relative) => relative === taken)).toBe(1);
    expect(readFileSync(join(root, taken), 'utf8')).toBe('indexed before the crash');
    expect(existsSync(join(root, lost))).toBe(false);
    expect(readdirSync(join(root, '.incoming'))).toEqual([]);
  });

  it('replaces a file the index already has by renaming over it, with no pending name', async () => {
    root = await mkdtemp(join(tmpdir(), 'tessera-incoming-'));
    const w = new IncomingWriter({ root });
    w.write(REL, [Buffer.from('old')]);
    w.settle(REL);
    w.write(REL, [Buffer.from('new')]);
    expect(readFileSync(join(root, REL), 'utf8')).toBe('new');
    expect(readdirSync(join(root, '.incoming'))).toEqual([]);
  });
});
