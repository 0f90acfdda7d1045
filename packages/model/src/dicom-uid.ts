/**
 * What a DICOM UID looks like (PS3.5 9.1): components of digits separated by dots, none
 * with a leading zero (a component is `0` or starts with 1-9), at most 64 characters.
 */
export const DICOM_UID_PATTERN = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

/** The longest UID PS3.5 allows. */
export const DICOM_UID_MAX_LENGTH = 64;

/** Human words for the rule, for error messages. */
export const DICOM_UID_RULE = 'digits and dots, no component with a leading zero, at most 64 characters';

/** True when the value is a syntactically valid DICOM UID. */
export function isDicomUid(value: unknown): value is string {
  return typeof value === 'string' && value.length <= DICOM_UID_MAX_LENGTH && DICOM_UID_PATTERN.test(value);
}
