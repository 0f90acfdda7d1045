import { describe, expect, it } from 'vitest';
import { EXTENSION_KEYWORDS as CONTRACT_KEYWORDS, ExtensionParameter } from '@tessera/api';
import { EXTENSION_KEYWORDS, ExtensionManifestSchema } from '@tessera/extension-packages';

// The contract (packages/api) cannot import the extension format; these keep the two in step.
describe('the extensions contract and the extension format', () => {
  it('filter the catalog by the keywords a manifest can carry', () => {
    expect([...CONTRACT_KEYWORDS]).toEqual([...EXTENSION_KEYWORDS]);
  });

  it('describe an install parameter with the fields the manifest takes', () => {
    const manifestParameter = (ExtensionManifestSchema.properties.parameters as unknown as { additionalProperties?: { properties: object }; patternProperties: Record<string, { properties: object }> });
    const fields = Object.keys(Object.values(manifestParameter.patternProperties)[0]!.properties).sort();
    expect(Object.keys(ExtensionParameter.properties).sort()).toEqual(fields);
  });
});
