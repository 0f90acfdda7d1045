import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TesseraError } from '@tessera/model';
import { PYDICOM_CHARSET_FILES, PYDICOM_FILES, skipDicomTools } from '../__fixtures__/dicom-env.ts';
import { ctWithNestedSequence } from '../__fixtures__/nested-sequences.ts';
import { MAX_SEQUENCE_DEPTH } from './dataset-reader.ts';
import { toDicomJson, type DicomJson } from './dataset-values.ts';
import { readDatasetOf, readPart10 } from './part10-reader.ts';
import { typedTags } from './typed-tags.ts';

// Files of pydicom's set that are not valid Part 10 instances, and what must be said of them.
const INVALID: Record<string, RegExp> = {
  'MR_truncated.dcm': /truncated: element \(7FE0,0010\)/,
  'rtplan_truncated.dcm': /truncated/,
  'no_meta.dcm': /DICM/,
  'ExplVR_BigEndNoMeta.dcm': /DICM/,
  'ExplVR_LitEndNoMeta.dcm': /DICM/,
  'rtstruct.dcm': /DICM/,
  // Not DICOM-conformant on purpose (a meta group without transfer syntax, a private group 0001, RGB JPEG with a mislabelled meta).
  'meta_missing_tsyntax.dcm': /value representation/,
  'nested_priv_SQ.dcm': /value representation/,
  'SC_rgb_jpeg.dcm': /value representation/,
};

/** pydicom's DICOM JSON of the same files: an independent reader as the oracle. */
function pydicomJson(files: string[]): Record<string, DicomJson> {
  const script = [
    'import json, sys, pydicom',
    'out = {}',
    'for f in sys.argv[1:]:',
    '    ds = pydicom.dcmread(f)',
    '    out[f] = ds.to_json_dict(bulk_data_threshold=1e12, bulk_data_element_handler=None)',
    'print(json.dumps(out))',
  ].join('\n');
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, ...files], { maxBuffer: 64 * 1024 * 1024 }).toString()) as Record<string, DicomJson>;
}

describe.skipIf(skipDicomTools)('the Part 10 reader on real files', () => {
  const all = readdirSync(PYDICOM_FILES).filter((f) => f.endsWith('.dcm'));

  it.each(all)('%s: reads it, or refuses it naming what is wrong', (name) => {
    const bytes = readFileSync(join(PYDICOM_FILES, name));
    if (INVALID[name]) {
      expect(() => readPart10(bytes)).toThrow(INVALID[name]!);
      try {
        readPart10(bytes);
      } catch (err) {
        expect(err).toBeInstanceOf(TesseraError);
        expect((err as TesseraError).code).toBe('TESSERA_INVALID_DICOM');
      }
      return;
    }
    const p = readPart10(bytes);
    expect(p.dataset.elements.size).toBeGreaterThan(0);
  });

  it('gives the same DICOM JSON values as pydicom for every top-level attribute, in every transfer syntax', () => {
    const names = ['CT_small.dcm', 'MR_small.dcm', 'MR_small_bigendian.dcm', 'MR_small_implicit.dcm', 'image_dfl.dcm', 'JPEG2000.dcm', 'rtplan.dcm', 'test-SR.dcm', 'reportsi.dcm'];
    const files = names.map((n) => join(PYDICOM_FILES, n));
    const oracle = pydicomJson(files);
    for (const f of files) {
      const ours = toDicomJson(readPart10(readFileSync(f)).dataset, { skipMeta: true, inlineBinaryMax: 1e12 });
      const theirs = oracle[f]!;
      for (const [tag, el] of Object.entries(theirs)) {
        if (el.vr === 'SQ' || el.InlineBinary !== undefined || el.Value === undefined || tag.endsWith('0000')) continue;
        expect(ours[tag], `${f} ${tag}`).toBeDefined();
        expect(ours[tag]!.vr, `${f} ${tag} VR`).toBe(el.vr);
        expect(ours[tag]!.Value, `${f} ${tag} (${el.vr})`).toEqual(el.Value);
      }
    }
  });

  it('decodes text by Specific Character Set exactly as pydicom does (ISO 2022 escapes included)', () => {
    const files = readdirSync(PYDICOM_CHARSET_FILES).filter((f) => f.endsWith('.dcm')).map((f) => join(PYDICOM_CHARSET_FILES, f));
    const oracle = pydicomJson(files);
    let compared = 0;
    for (const f of files) {
      const ours = toDicomJson(readPart10(readFileSync(f)).dataset, { skipMeta: true });
      for (const [tag, el] of Object.entries(oracle[f]!)) {
        // Private elements: pydicom reads them with its private dictionaries, we keep them UN.
        if (!['PN', 'LO', 'SH', 'ST', 'LT', 'UT'].includes(el.vr) || el.Value === undefined || parseInt(tag.slice(0, 4), 16) % 2 === 1) continue;
        expect(ours[tag]!.Value, `${f} ${tag}`).toEqual(el.Value);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(20);
  });

  it('keeps values typed: numbers, ISO dates and times, names, lists', () => {
    const t = typedTags(toDicomJson(readPart10(readFileSync(join(PYDICOM_FILES, 'CT_small.dcm'))).dataset, { skipMeta: true }));
    expect(t.StudyDate).toBe('2004-01-19');
    expect(t.StudyTime).toBe('07:27:30');
    expect(t.SliceThickness).toBe(5);
    expect(t.Rows).toBe(128);
    expect(t.PatientName).toBe('CompressedSamples^CT1');
    expect(t.ImageType).toEqual(['ORIGINAL', 'PRIMARY', 'AXIAL']);
  });

  it('refuses garbage, cut-off datasets and unknown transfer syntaxes with the place of the fault', () => {
    const ct = readFileSync(join(PYDICOM_FILES, 'CT_small.dcm'));
    expect(() => readPart10(Buffer.alloc(10))).toThrow(/shorter than the 128-byte preamble/);
    expect(() => readPart10(Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from('garbage that is not an element')]))).toThrow(/value representation|truncated|Transfer Syntax/);
    const p = readPart10(ct);
    const dataset = ct.subarray(p.datasetOffset);
    expect(() => readDatasetOf(dataset.subarray(0, 3000), p.transferSyntaxUid)).toThrow(/truncated: .* at byte \d+/);
    expect(() => readDatasetOf(dataset, '1.2.3.4')).toThrow(/transfer syntax 1\.2\.3\.4 is not one Tessera stores/);
    // Explicit-VR bytes read as big endian are garbage, and are called so.
    expect(() => readDatasetOf(dataset, '1.2.840.10008.1.2.2')).toThrow(TesseraError);
  });
});

describe.skipIf(skipDicomTools)('sequences nested deep', () => {
  it(`reads an instance whose sequences nest ${MAX_SEQUENCE_DEPTH} levels, and refuses one nested deeper, naming the limit`, () => {
    const ok = readPart10(ctWithNestedSequence(MAX_SEQUENCE_DEPTH));
    expect(ok.dataset.elements.get(0x00091001)?.items).toHaveLength(1);
    for (const depth of [MAX_SEQUENCE_DEPTH + 1, 2000, 100_000]) {
      let thrown: unknown;
      try {
        readPart10(ctWithNestedSequence(depth));
      } catch (err) {
        thrown = err;
      }
      expect(thrown, `depth ${depth}`).toBeInstanceOf(TesseraError);
      expect((thrown as TesseraError).code).toBe('TESSERA_INVALID_DICOM');
      expect((thrown as TesseraError).message).toMatch(new RegExp(`sequences nest deeper than ${MAX_SEQUENCE_DEPTH} levels`));
    }
  });
});

describe.skipIf(skipDicomTools)('known attributes sent as UN', () => {
  it('reads them with the dictionary VR, so that their UIDs and texts are values, not InlineBinary (pydicom rtdose_rle.dcm)', () => {
    const p = readPart10(readFileSync(join(PYDICOM_FILES, 'rtdose_rle.dcm')));
    const json = toDicomJson(p.dataset);
    expect(json['00080018']).toEqual({ vr: 'UI', Value: ['1.9.999.999.99.9.9999.9999.20030818153516'] });
    expect(json['0020000D']?.vr).toBe('UI');
    expect(json['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Lastname^Firstname' }] });
    // Rows is a US: read as a number in the file's byte order.
    expect(json['00280010']).toEqual({ vr: 'US', Value: [10] });
  });
});
