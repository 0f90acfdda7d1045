import { Type, type Static } from '@sinclair/typebox';
import { AnyObject, DateTime, errors, Nullable, Obj, OrderParam, PageOf, PageParams, SortParam } from './common.ts';
import { ADMIN, defineRoute, SIGNED_IN } from './route.ts';

/** Keywords a catalog filters on (Kaapana's extension keywords); the manifest schema of @tessera/extension-packages takes the same. */
export const EXTENSION_KEYWORDS = ['experimental', 'multi-installable', 'gpu-required'] as const;

/** Where an extension stands in the catalog. */
export const EXTENSION_STATES = ['not_installed', 'installing', 'installed', 'error', 'uninstalling'] as const;

/** `sort` fields of the catalog (`installed_at`: when the installed version was installed, or its install began). */
export const EXTENSION_SORTS = ['name', 'kind', 'state', 'title', 'installed_at'] as const;

const Kind = Type.Union([Type.Literal('workflow'), Type.Literal('application')], { description: '"workflow" (DAGs of operators) or "application" (a web app served on a subpath).' });
const Source = Type.Union([Type.Literal('builtin'), Type.Literal('package'), Type.Literal('folder')], {
  description: '`builtin`: the platform\'s collection; `package`: an uploaded package; `folder`: a linked folder (TESSERA_EXTENSIONS_DIRS).',
});

export const ExtensionParameter = Obj(
  {
    type: Type.Union([Type.Literal('string'), Type.Literal('boolean'), Type.Literal('list_single'), Type.Literal('list_multi')], {
      description: 'A text, a switch, one of `options`, several of `options`.',
    }),
    description: Type.Optional(Type.String()),
    default: Type.Optional(Type.Union([Type.String(), Type.Boolean(), Type.Array(Type.String())])),
    options: Type.Optional(Type.Array(Type.String(), { description: 'The choices of list_single and list_multi.' })),
    required: Type.Optional(Type.Boolean()),
  },
  { $id: 'ExtensionParameter', description: "An install parameter of an extension (manifest `parameters`, Kaapana's extension_params)." },
);
export type ExtensionParameter = Static<typeof ExtensionParameter>;

export const ExtensionVersion = Obj(
  {
    version: Type.String({ examples: ['1.2.0'] }),
    source: Source,
    platform: Nullable(Type.String({ description: 'The Tessera versions it asks for (manifest `platform`, a semver range).' })),
    problem: Nullable(Type.String({ description: 'Why this version cannot be installed here (the platform version), or null.' })),
    sha256: Nullable(Type.String({ description: "The package's checksum (null for built-in and linked versions)." })),
    bytes: Nullable(Type.Integer({ description: "The package's size (null for built-in and linked versions)." })),
    uploaded_at: Nullable(DateTime('When the package was uploaded (null for built-in and linked versions).')),
  },
  { $id: 'ExtensionVersion', description: 'A version of an extension that the catalog holds.' },
);
export type ExtensionVersion = Static<typeof ExtensionVersion>;

export const Extension = Obj(
  {
    name: Type.String({ examples: ['total-segmentator'] }),
    kind: Kind,
    title: Type.String({ description: 'Display name (the name when the manifest has none).' }),
    description: Type.String(),
    documentation: Nullable(Type.String({ description: "Link to the extension's documentation." })),
    keywords: Type.Array(Type.Unsafe<(typeof EXTENSION_KEYWORDS)[number]>({ type: 'string', enum: [...EXTENSION_KEYWORDS] })),
    parameters: Type.Record(Type.String(), ExtensionParameter, { description: 'Install parameters, by name.' }),
    dependencies: Type.Record(Type.String(), Type.String(), { description: 'Other extensions it needs: name -> semver range of their version.' }),
    images: Type.Array(Type.String(), { description: 'Container images it builds or ships.' }),
    versions: Type.Array(ExtensionVersion, { description: 'Newest first; a linked folder first of all.' }),
    latest: Nullable(Type.String({ description: 'The newest version that can be installed here.' })),
    state: Type.Unsafe<(typeof EXTENSION_STATES)[number]>({ type: 'string', enum: [...EXTENSION_STATES] }),
    installed: Nullable(
      Obj({
        version: Type.String(),
        source: Source,
        params: AnyObject("The values of the extension's install parameters."),
        updated_at: DateTime('When it was installed (or its install began).'),
      }, { description: 'The installed version (or the one being installed); null when not installed or in state error.' }),
    ),
    error: Nullable(Type.String({ description: 'Why it is in state error (or why its last upgrade failed).' })),
    progress: Nullable(Type.String({ description: 'What an install in progress is doing (e.g. `building image x`).' })),
    linked: Nullable(Type.String({ description: 'The folder under TESSERA_EXTENSIONS_DIRS it is loaded from: always installed, as it is on disk.' })),
    workflows: Type.Array(Type.String(), { description: 'The ids of the workflows it provides, while installed.' }),
  },
  { $id: 'Extension', description: 'A catalog entry: an extension, the versions the catalog holds, and its install.' },
);
export type Extension = Static<typeof Extension>;

export const CatalogProblem = Obj(
  { dir: Type.String(), message: Type.String() },
  { $id: 'CatalogProblem', description: 'A built-in extension folder that is not in the catalog, and why.' },
);
export type CatalogProblem = Static<typeof CatalogProblem>;

export const ExtensionCatalog = Obj(
  { ...PageOf(Extension).properties, problems: Type.Array(CatalogProblem) },
  { $id: 'ExtensionCatalog', description: 'A page of the catalog, and the built-in extensions that could not be read.' },
);
export type ExtensionCatalog = Static<typeof ExtensionCatalog>;

export const ExtensionPackage = Obj(
  {
    name: Type.String(),
    version: Type.String(),
    kind: Kind,
    sha256: Type.String(),
    bytes: Type.Integer(),
    replaced: Type.Boolean({ description: 'A package of the same name and version, with other bytes, was there: this one replaced it.' }),
  },
  { $id: 'ExtensionPackage', description: 'An uploaded package, stored in the catalog (not installed).' },
);
export type ExtensionPackage = Static<typeof ExtensionPackage>;

export const DeletedExtensionVersion = Obj(
  {
    name: Type.String(),
    version: Type.String(),
    bytes: Type.Integer({ description: "The package's size as uploaded." }),
    removed: Type.Boolean({ description: 'Its files are gone from the disk; false while queued or running runs still use that version: they are removed when those end.' }),
  },
  { $id: 'DeletedExtensionVersion', description: 'An uploaded package version, deleted from the catalog.' },
);
export type DeletedExtensionVersion = Static<typeof DeletedExtensionVersion>;

export const InstallExtension = Type.Object(
  {
    version: Type.Optional(Type.String({ description: 'Version to install (default: the newest that fits this Tessera).' })),
    params: Type.Optional(AnyObject("Values of the extension's install parameters (manifest `parameters`).")),
  },
  { $id: 'InstallExtension', additionalProperties: false },
);
export type InstallExtension = Static<typeof InstallExtension>;

export const ExtensionQuery = Type.Object({
  kind: Type.Optional(Type.Unsafe<'workflow' | 'application'>({ type: 'string', enum: ['workflow', 'application'] })),
  keyword: Type.Optional(Type.Unsafe<(typeof EXTENSION_KEYWORDS)[number]>({ type: 'string', enum: [...EXTENSION_KEYWORDS] })),
  state: Type.Optional(Type.String({ description: `Comma-separated: ${EXTENSION_STATES.join(', ')}` })),
  q: Type.Optional(Type.String({ description: 'Text in the name, title or description' })),
  sort: SortParam(EXTENSION_SORTS, 'name'),
  order: OrderParam,
  ...PageParams(1000, 1000),
});

/** The media types an uploaded package is taken as. */
export const PACKAGE_MEDIA_TYPES = ['application/gzip', 'application/x-gzip', 'application/x-tar', 'application/octet-stream'] as const;

const NameParams = Type.Object({ name: Type.String({ minLength: 1 }) });
const VersionParams = Type.Object({ name: Type.String({ minLength: 1 }), version: Type.String({ minLength: 1 }) });
const tags = ['extensions'];

/** The extensions domain's routes: the catalog, uploaded packages, installs. */
export const extensionRoutes = {
  list: defineRoute({
    method: 'GET',
    url: '/api/extensions',
    operationId: 'listExtensions',
    tags,
    summary: 'The catalog: every available extension with its versions, kind, keywords, parameters and state',
    project: { in: 'none' },
    access: SIGNED_IN,
    querystring: ExtensionQuery,
    response: { 200: ExtensionCatalog, ...errors(400, 500) },
  }),
  get: defineRoute({
    method: 'GET',
    url: '/api/extensions/:name',
    operationId: 'getExtension',
    tags,
    summary: 'One catalog entry',
    project: { in: 'none' },
    access: SIGNED_IN,
    params: NameParams,
    response: { 200: Extension, ...errors(400, 404, 500) },
  }),
  upload: defineRoute({
    method: 'POST',
    url: '/api/extensions/packages',
    operationId: 'uploadExtensionPackage',
    tags,
    summary: 'Upload an extension package (.tgz from `tessera ext build`) into the catalog; it is checked whole, and not installed',
    description:
      'The body is the package itself, as application/gzip (application/x-gzip, application/x-tar and application/octet-stream are taken too). ' +
      'It is refused (413) past TESSERA_EXTENSION_MAX_PACKAGE_MB, packed or unpacked; 409 when it has the name and version of a built-in extension.',
    project: { in: 'none' },
    access: ADMIN,
    consumes: PACKAGE_MEDIA_TYPES,
    response: { 201: ExtensionPackage, ...errors(400, 409, 413, 415, 500) },
  }),
  install: defineRoute({
    method: 'POST',
    url: '/api/extensions/:name/install',
    operationId: 'installExtension',
    tags,
    summary: 'Install, upgrade, downgrade or reconfigure an extension (202: started; the entry shows its state until installed or error)',
    description:
      'Everything that can be checked first is (version, platform, parameters, dependencies, Docker): a problem answers at once and changes nothing. ' +
      'With `wait=true` the answer comes when the install has ended: 200 with the entry, or the error the install ended with.',
    project: { in: 'none' },
    access: ADMIN,
    params: NameParams,
    querystring: Type.Object({
      wait: Type.Optional(Type.Boolean({ description: 'Answer when the install has ended (200, or the error) instead of at once (202).' })),
    }),
    body: InstallExtension,
    // 200: the entry, installed (or already installed as asked); 202: the entry, installing.
    response: { 200: Extension, 202: Extension, ...errors(400, 404, 409, 413, 415, 500, 503) },
  }),
  uninstall: defineRoute({
    method: 'DELETE',
    url: '/api/extensions/:name',
    operationId: 'uninstallExtension',
    tags,
    summary: 'Uninstall an extension: its workflows go at once, its images once no run of it is still going',
    description:
      'Refused (409) while it is being installed, when it is not installed or linked, when an installed extension needs it, ' +
      'or when the manifest of an installed extension cannot be read (whether it needs this one is then unknown).',
    project: { in: 'none' },
    access: ADMIN,
    params: NameParams,
    response: { 200: Extension, ...errors(400, 404, 409, 413, 415, 500) },
  }),
  deleteVersion: defineRoute({
    method: 'DELETE',
    url: '/api/extensions/:name/versions/:version',
    operationId: 'deleteExtensionVersion',
    tags,
    summary: 'Delete an uploaded package version from the catalog: its files and its entry',
    description:
      'Refused (409) while that version is installed (uninstall it first), while the extension is being installed or uninstalled, ' +
      'and for built-in and linked versions, which are not packages. Runs still going on that version keep its files until they end (`removed: false`).',
    project: { in: 'none' },
    access: ADMIN,
    params: VersionParams,
    response: { 200: DeletedExtensionVersion, ...errors(400, 404, 409, 413, 415, 500) },
  }),
} as const;
