import { TesseraError } from '@tessera/model';
import { describe, expect, it } from 'vitest';
import { invalidDicom } from '../parse/dataset-reader.ts';
import { DIMSE_STATUS, storeStatusOf } from './store-status.ts';

describe('storeStatusOf', () => {
  it('answers 0xC000 for a bad instance: resending it will not help', () => {
    expect(storeStatusOf(invalidDicom('the instance has no SOP Instance UID'))).toEqual({ status: 0xc000, comment: 'the instance has no SOP Instance UID' });
    expect(storeStatusOf(new TesseraError('TESSERA_PAYLOAD_TOO_LARGE', 'too big')).status).toBe(DIMSE_STATUS.cannotUnderstand);
  });

  it('answers 0xA700 for a fault of ours, which a sender may retry', () => {
    expect(storeStatusOf(new TesseraError('TESSERA_STORAGE', 'the disk is full'))).toEqual({ status: 0xa700, comment: 'the disk is full' });
    expect(storeStatusOf(new TesseraError('TESSERA_INTERNAL', 'a bug')).status).toBe(0xa700);
    expect(storeStatusOf(new RangeError('out of range'))).toEqual({ status: 0xa700, comment: 'out of range' });
    expect(storeStatusOf('a thrown string')).toEqual({ status: 0xa700, comment: 'a thrown string' });
  });

  it('answers a bug with 0x0110 "processing failure" in STOW-RS, 0xA700 in C-STORE', () => {
    expect(storeStatusOf({ code: 'TESSERA_INTERNAL', message: 'a bug' }, { protocol: 'stow-rs' })).toEqual({ status: 0x0110, comment: 'a bug' });
    expect(storeStatusOf(new RangeError('out of range'), { protocol: 'stow-rs' })).toEqual({ status: 0x0110, comment: 'out of range' });
    expect(storeStatusOf(new TesseraError('TESSERA_STORAGE', 'disk full'), { protocol: 'stow-rs' }).status).toBe(0xa700);
    expect(storeStatusOf(new RangeError('out of range'), { protocol: 'c-store' }).status).toBe(0xa700);
  });

  it('answers a duplicate refused by the reject policy with 0x0111 in STOW-RS, 0xC000 in C-STORE', () => {
    const duplicate = new TesseraError('TESSERA_CONFLICT', 'SOP Instance 1.2.3 is already stored');
    expect(storeStatusOf(duplicate, { protocol: 'stow-rs' })).toEqual({ status: 0x0111, comment: 'SOP Instance 1.2.3 is already stored' });
    expect(storeStatusOf(duplicate, { protocol: 'c-store' }).status).toBe(0xc000);
    expect(storeStatusOf(duplicate).status).toBe(0xc000);
  });

  it('maps the { code, message } of a rejected import result as it maps the error itself', () => {
    expect(storeStatusOf({ code: 'TESSERA_CONFLICT', message: 'already stored' }, { protocol: 'stow-rs' })).toEqual({ status: 0x0111, comment: 'already stored' });
    expect(storeStatusOf({ code: 'TESSERA_STORAGE', message: 'disk full' }, { protocol: 'stow-rs' })).toEqual({ status: 0xa700, comment: 'disk full' });
    expect(storeStatusOf({ code: 'TESSERA_INVALID_DICOM', message: 'garbage' }, { protocol: 'stow-rs' })).toEqual({ status: 0xc000, comment: 'garbage' });
  });
});
