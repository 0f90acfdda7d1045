export * from './errors.ts';
export * from './dag-spec.schema.ts';
export * from './dag-validate.ts';
export * from './form-validate.ts';
export * from './trigger-rules.ts';
export * from './python-str.ts';
export * from './json-validator.ts';
export * from './platform-version.ts';
