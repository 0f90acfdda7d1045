import { Type, type Static } from '@sinclair/typebox';

/** File name of the manifest at the root of an extension folder. */
export const MANIFEST_FILE = 'tessera-extension.json';

/** Keywords a catalog filters on (Kaapana's extension keywords). */
export const EXTENSION_KEYWORDS = ['experimental', 'multi-installable', 'gpu-required'] as const;

const Parameter = Type.Object(
  {
    type: Type.Union([Type.Literal('string'), Type.Literal('boolean'), Type.Literal('list_single'), Type.Literal('list_multi')], {
      description: "Kaapana's extension_params types: a text, a switch, one of `options`, several of `options`.",
    }),
    description: Type.Optional(Type.String()),
    default: Type.Optional(Type.Union([Type.String(), Type.Boolean(), Type.Array(Type.String())])),
    options: Type.Optional(Type.Array(Type.String(), { minItems: 1, description: 'The choices of list_single and list_multi.' })),
    required: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const ImagePullPolicy = Type.Union([Type.Literal('IfNotPresent'), Type.Literal('Always'), Type.Literal('Never')], {
  description: "When the engine pulls an image (Kubernetes' imagePullPolicy): IfNotPresent (default: only when the engine lacks it), Always (at each install and run), Never (only an image the engine holds).",
});

/** How an application extension runs: a web app served on a subpath of the platform. */
export const AppSpec = Type.Object(
  {
    process: Type.Optional(
      Type.Object(
        {
          command: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Command run with the extension folder as working directory; it must listen on 127.0.0.1:$PORT.' }),
        },
        { additionalProperties: false },
      ),
    ),
    container: Type.Optional(
      Type.Object(
        {
          image: Type.String({ minLength: 1 }),
          command: Type.Optional(Type.Array(Type.String())),
          port: Type.Integer({ minimum: 1, maximum: 65535, description: 'Port the app listens on inside the container.' }),
        },
        { additionalProperties: false },
      ),
    ),
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String(), { description: 'Environment of the app.' })),
    ingress: Type.Optional(
      Type.Union([Type.Literal('subpath'), Type.Literal('strip')], {
        description: '"subpath" (default): the app serves under INGRESS_PATH itself (e.g. a base_url setting); "strip": the proxy removes the prefix, and rewrites redirects and cookie paths.',
      }),
    ),
    health: Type.Optional(
      Type.Object(
        {
          path: Type.Optional(Type.String({ pattern: '^/', description: 'Path (under the subpath when ingress is "subpath") that answers 2xx or 3xx once the app is ready; default "/".' })),
          timeout_s: Type.Optional(Type.Number({ minimum: 1, maximum: 3600, description: 'How long it may take to become ready (default 60).' })),
        },
        { additionalProperties: false },
      ),
    ),
    resources: Type.Optional(Type.Object({ ram_mb: Type.Optional(Type.Integer({ minimum: 1 })), cpu_millicores: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false })),
    instances: Type.Optional(
      Type.Union([Type.Literal('single'), Type.Literal('multi')], {
        description: '"single" (default): one instance per project; "multi": several per project, each with its own parameters and name.',
      }),
    ),
    mounts: Type.Optional(
      Type.Object(
        { results: Type.Optional(Type.Boolean({ description: "The project's result bucket, as RESULTS_DIR (in a container: /kaapana/mounted/results)." })) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false, description: 'The application spec of kind "application": how to start it, where it listens, when it is ready.' },
);
export type AppSpecT = Static<typeof AppSpec>;

/**
 * The extension manifest (`tessera-extension.json`): what an extension is, what it
 * needs, and what it provides. Only name, version, kind and (for workflow extensions)
 * workflows are required.
 */
export const ExtensionManifestSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$', description: 'Unique name: lower-case letters, digits and "-".' }),
    version: Type.String({ pattern: '^\\d+\\.\\d+\\.\\d+([-+][0-9A-Za-z.-]+)?$', description: 'Semantic version, e.g. "1.2.0".' }),
    kind: Type.Union([Type.Literal('workflow'), Type.Literal('application')], { description: '"workflow" (DAGs of operators) or "application" (a web app served on a subpath).' }),
    title: Type.Optional(Type.String({ description: 'Display name.' })),
    description: Type.Optional(Type.String()),
    documentation: Type.Optional(Type.String({ pattern: '^https?://', description: 'Link to the extension\'s documentation.' })),
    keywords: Type.Optional(Type.Array(Type.Union(EXTENSION_KEYWORDS.map((k) => Type.Literal(k))), { uniqueItems: true })),
    platform: Type.Optional(Type.String({ description: 'Range of Tessera versions the extension works with (semver range, e.g. ">=0.1.0 <1").' })),
    dependencies: Type.Optional(
      Type.Record(Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$' }), Type.String(), {
        description: 'Other extensions this one needs: name -> semver range of their version.',
      }),
    ),
    parameters: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Parameter, { description: 'Install-time parameters (Kaapana\'s extension_params).' }),
    ),
    workflows: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description: 'Workflow modules (.ts/.js, default export of @tessera/sdk defineWorkflow) or compiled DAG specs (.json), relative to the folder. Required for kind "workflow".',
      }),
    ),
    images: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({
              minLength: 1,
              description: 'Image the operators refer to: "name:tag" for one built from `context`; a registry reference ("registry.example.org:5000/ns/name:tag", "name@sha256:<digest>") for one pulled from a registry.',
            }),
            context: Type.Optional(Type.String({ minLength: 1, description: 'Docker build context, relative to the folder: the image is built and shipped in the package. Without it the image is referenced: pulled from its registry.' })),
            dockerfile: Type.Optional(Type.String({ description: 'Dockerfile within the context (default Dockerfile).' })),
            image_pull_policy: Type.Optional(ImagePullPolicy),
            embed: Type.Optional(Type.Boolean({ description: 'A registry image (no context) that `tessera ext build` pulls and saves into the package, so that it installs with no network (air-gapped).' })),
          },
          { additionalProperties: false },
        ),
        { description: 'Container images of the extension: built from a context and shipped, or referenced by registry name and pulled.' },
      ),
    ),
    image_pull_policy: Type.Optional(ImagePullPolicy),
    app: Type.Optional(AppSpec),
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
