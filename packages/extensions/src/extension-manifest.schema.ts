import { Type, type Static } from '@sinclair/typebox';

/** File name of the manifest at the root of an extension folder. */
export const MANIFEST_FILE = 'tessera-extension.json';

/**
 * The minimal extension manifest: enough to load workflows from a folder. The
 * full package format (catalog, versions, application extensions) extends it.
 */
export const ExtensionManifestSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$', description: 'Unique name: lower-case letters, digits and "-".' }),
    version: Type.String({ pattern: '^\\d+\\.\\d+\\.\\d+([-+][0-9A-Za-z.-]+)?$', description: 'Semantic version, e.g. "1.2.0".' }),
    kind: Type.Union([Type.Literal('workflow')], { description: '"workflow" (application extensions come later).' }),
    title: Type.Optional(Type.String()),
    description: Type.Optional(Type.String()),
    workflows: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'Workflow modules (.ts/.js, default export of @tessera/sdk defineWorkflow) or compiled DAG specs (.json), relative to the folder.',
    }),
    triggers: Type.Optional(
      Type.Array(
        Type.Object(
          {
            workflow: Type.String({ minLength: 1, description: 'Id of a workflow of this extension.' }),
            when: Type.Record(Type.String({ minLength: 1 }), Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })]), {
              description: 'Attribute conditions, all of which a series must meet: keyword (e.g. Modality) -> value or list of values; "*" and "?" are wildcards.',
            }),
            projects: Type.Optional(Type.Array(Type.String(), { description: 'Only series of these projects (default: every project).' })),
            workflow_form: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'Parameters of the runs it starts.' })),
          },
          { additionalProperties: false },
        ),
        { description: 'Start a workflow on each series that has fully arrived and meets the conditions (one run per series).' },
      ),
    ),
  },
  { additionalProperties: false, $id: 'https://tessera.dev/schemas/extension-manifest-v1.json' },
);

export type ExtensionManifest = Static<typeof ExtensionManifestSchema>;
