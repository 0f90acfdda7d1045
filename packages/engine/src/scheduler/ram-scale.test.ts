import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TaskSpec } from '@tessera/model';
import { matchingFileSizes, scaleTargetBytes, withScaledRam } from './ram-scale.ts';

const MiB = 1024 * 1024;
let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tessera-ram-scale-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Writes a file of `bytes` bytes at `rel` under the temp root (folders made as needed). */
async function file(rel: string, bytes: number): Promise<void> {
  const p = join(root, rel);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, Buffer.alloc(bytes, 0x61));
}

function task(resources: TaskSpec['resources']): TaskSpec {
  return {
    id: 'register',
    operator: 'container',
    upstream: [],
    trigger_rule: 'all_success',
    level: 'batch',
    output_dir: 'register',
    env: {},
    retries: 0,
    retry_delay_s: 0,
    retry_backoff: 'fixed',
    resources,
  };
}

describe('matchingFileSizes', () => {
  it('finds files in subfolders at any depth, like rglob', async () => {
    await file('ch/a.dcm', 10);
    await file('ch/item1/b.dcm', 20);
    await file('ch/item1/deep/er/c.dcm', 30);
    await file('ch/item1/notes.txt', 1000);
    expect(matchingFileSizes(join(root, 'ch'), '*.dcm').sort((a, b) => a - b)).toEqual([10, 20, 30]);
    expect(matchingFileSizes(join(root, 'ch')).reduce((a, b) => a + b, 0)).toBe(1060);
  });

  it('fully matches target_regex against the path relative to the target dir', async () => {
    await file('ch/keep/x.nrrd', 5);
    await file('ch/drop/x.nrrd', 7);
    await file('ch/keep/x.nrrd.bak', 11);
    expect(matchingFileSizes(join(root, 'ch'), '*', 'keep/.*\\.nrrd')).toEqual([5]);
    // a partial match is not enough (re.fullmatch)
    expect(matchingFileSizes(join(root, 'ch'), '*', 'x\\.nrrd')).toEqual([]);
  });

  it('supports ?, [...] and a glob with a folder part, as Path.rglob does', async () => {
    await file('ch/i1/seg/a1.nii', 3);
    await file('ch/i1/img/a2.nii', 4);
    await file('ch/i2/seg/b1.nii', 6);
    const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    expect(sum(matchingFileSizes(join(root, 'ch'), 'seg/*.nii'))).toBe(9);
    expect(sum(matchingFileSizes(join(root, 'ch'), 'a?.nii'))).toBe(7);
    expect(sum(matchingFileSizes(join(root, 'ch'), '[!a]*.nii'))).toBe(6);
    expect(sum(matchingFileSizes(join(root, 'ch'), '**/img/*.nii'))).toBe(4);
  });

  it('counts symlinks to files but not folders themselves; a missing dir is empty', async () => {
    await file('data/big.bin', 100);
    await mkdir(join(root, 'ch'), { recursive: true });
    await symlink(join(root, 'data/big.bin'), join(root, 'ch/link.bin'));
    await symlink(join(root, 'nowhere'), join(root, 'ch/dangling.bin'));
    await mkdir(join(root, 'ch/empty.bin'));
    expect(matchingFileSizes(join(root, 'ch'), '*.bin')).toEqual([100]);
    expect(matchingFileSizes(join(root, 'not-there'))).toEqual([]);
  });
});

describe('scaleTargetBytes', () => {
  beforeEach(async () => {
    // two items (immediate subfolders) plus a loose file at the channel root
    await file('ch/loose.dcm', 1000);
    await file('ch/item-a/1.dcm', 100);
    await file('ch/item-a/2.dcm', 200);
    await file('ch/item-a/sub/3.dcm', 300);
    await file('ch/item-b/1.dcm', 400);
    await file('ch/item-b/sub/2.dcm', 500);
    await file('ch/item-b/readme.txt', 9999);
  });

  it('sum: all matching files of the channel, in subfolders too', () => {
    expect(scaleTargetBytes(join(root, 'ch'), { mode: 'sum', target_glob: '*.dcm' })).toBe(2500);
  });

  it('max_file_size: the largest matching file', () => {
    expect(scaleTargetBytes(join(root, 'ch'), { mode: 'max_file_size', target_glob: '*.dcm' })).toBe(1000);
    expect(scaleTargetBytes(join(root, 'ch'), { mode: 'max_file_size' })).toBe(9999);
  });

  it('max_item_sum: the largest per-item sum; files at the channel root are no item', () => {
    expect(scaleTargetBytes(join(root, 'ch'), { mode: 'max_item_sum', target_glob: '*.dcm' })).toBe(900);
    expect(scaleTargetBytes(join(root, 'ch'), { mode: 'max_item_sum', target_glob: '*.txt' })).toBe(9999);
  });

  it('target_dir is relative to the channel (sum) or to each item (max_item_sum)', () => {
    expect(scaleTargetBytes(join(root, 'ch'), { mode: 'sum', target_dir: 'item-b' })).toBe(400 + 500 + 9999);
    expect(scaleTargetBytes(join(root, 'ch'), { mode: 'max_item_sum', target_dir: 'sub' })).toBe(500);
    expect(scaleTargetBytes(join(root, 'ch'), { mode: 'sum', target_dir: '.', target_glob: '*.dcm' })).toBe(2500);
  });

  it('a missing channel dir, an empty one, or one without items measures 0', async () => {
    for (const mode of ['sum', 'max_file_size', 'max_item_sum'] as const) {
      expect(scaleTargetBytes(join(root, 'missing'), { mode })).toBe(0);
    }
    await file('flat/only.dcm', 50);
    expect(scaleTargetBytes(join(root, 'flat'), { mode: 'max_item_sum' })).toBe(0);
    expect(scaleTargetBytes(join(root, 'ch'), { mode: 'max_item_sum', target_dir: 'nope' })).toBe(0);
  });
});

describe('withScaledRam', () => {
  beforeEach(async () => {
    await file('wf/convert/dicom/s1/a.dcm', 2 * MiB);
    await file('wf/convert/dicom/s1/b.dcm', 1 * MiB);
    await file('wf/convert/dicom/s2/c.dcm', 5 * MiB);
  });

  it('raises ram_mb to factor x target size (a Task API limit rule)', () => {
    const t = task({ ram_mb: 100, ram_scale: [{ source: 'convert/dicom', factor: 100, mode: 'max_item_sum', target_glob: '*.dcm' }] });
    const scaled = withScaledRam(join(root, 'wf'), t);
    expect(scaled.resources?.ram_mb).toBe(500);
    expect(t.resources?.ram_mb).toBe(100); // the spec itself is left alone
    expect(withScaledRam(join(root, 'wf'), task({ ram_scale: [{ source: 'convert/dicom', factor: 10, mode: 'sum' }] })).resources?.ram_mb).toBe(80);
  });

  it('keeps the static ram_mb when the rule asks for less, and the task object when nothing changes', () => {
    const t = task({ ram_mb: 4096, ram_scale: [{ source: 'convert/dicom', factor: 10, mode: 'max_file_size' }] });
    expect(withScaledRam(join(root, 'wf'), t)).toBe(t);
    const none = task({ ram_mb: 10 });
    expect(withScaledRam(join(root, 'wf'), none)).toBe(none);
  });

  it('takes the largest of several rules and rounds up to whole MB', async () => {
    await file('wf/seg/x.nii', 1.5 * MiB);
    const t = task({
      ram_scale: [
        { source: 'convert/dicom', factor: 2, mode: 'max_file_size' },
        { source: 'seg', factor: 7, mode: 'sum' },
      ],
    });
    expect(withScaledRam(join(root, 'wf'), t).resources?.ram_mb).toBe(Math.ceil(7 * 1.5));
  });

  it('power: RAM = factor x size ** power (the docs\' complexity "n**2")', async () => {
    await file('wf/small/a', 1024);
    const t = task({ ram_scale: [{ source: 'small', factor: 1, power: 2, mode: 'sum' }] });
    expect(withScaledRam(join(root, 'wf'), t).resources?.ram_mb).toBe(1);
  });

  it('an input that is not there (yet) leaves ram_mb as it is', () => {
    const t = task({ ram_mb: 256, ram_scale: [{ source: 'upstream/out', factor: 1000, mode: 'max_item_sum' }] });
    expect(withScaledRam(join(root, 'wf'), t)).toBe(t);
  });
});
