import { expect } from 'vitest';
import { TesseraError } from '@tessera/model';

/** The TesseraError `fn` throws; fails the test if it throws nothing or something else. */
export function caught(fn: () => unknown): TesseraError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TesseraError);
    return err as TesseraError;
  }
  throw new Error('expected a TesseraError');
}

/** The TesseraError `promise` rejects with; fails the test if it resolves or rejects with something else. */
export async function rejection(promise: Promise<unknown>): Promise<TesseraError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(TesseraError);
    return err as TesseraError;
  }
  throw new Error('expected a rejection with a TesseraError');
}
