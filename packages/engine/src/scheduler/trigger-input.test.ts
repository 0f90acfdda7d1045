import { describe, expect, it } from 'vitest';
import { CONTRACT_ENV_NAMES, TesseraError } from '@tessera/model';
import { checkSeries, unsafeEnvName } from './trigger-input.ts';

describe('unsafeEnvName', () => {
  it('refuses every variable of the operator contract and those that change how programs run', () => {
    for (const name of [...CONTRACT_ENV_NAMES, 'path', 'LD_PRELOAD', 'NODE_OPTIONS', 'TESSERA_HOME', 'EXTENSION_DIR']) {
      expect(unsafeEnvName(name)).toContain('reserved');
    }
    expect(unsafeEnvName('my-key')).toContain('letters, digits and "_"');
    expect(unsafeEnvName('threshold')).toBeUndefined();
  });
});

describe('checkSeries', () => {
  it('accepts DICOM UIDs and refuses anything else, naming each entry', () => {
    expect(() => checkSeries(['1.2.3'], true)).not.toThrow();
    const err = (() => {
      try {
        checkSeries(['1.2.3', '../x', 7], false);
      } catch (e) {
        return e as TesseraError;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(TesseraError);
    expect(err!.details).toEqual([
      { where: 'data_form.identifiers[1]', message: '"../x" is not a DICOM UID (digits and dots, no component with a leading zero, at most 64 characters)' },
      { where: 'data_form.identifiers[2]', message: '"7" is not a DICOM UID (digits and dots, no component with a leading zero, at most 64 characters)' },
    ]);
  });

  it('refuses single_execution without series', () => {
    expect(() => checkSeries([], true)).toThrow('single_execution needs series to fan out over');
    expect(() => checkSeries([], false)).not.toThrow();
  });
});
