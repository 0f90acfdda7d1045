import { existsSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import semver from 'semver';
import { PLATFORM_VERSION, TesseraError, ajvErrorsToDetails, createAjv, imageReferenceProblem, validateDagSpec, type DagSpec } from '@tessera/model';
import { ExtensionManifestSchema, MANIFEST_FILE, type ExtensionManifest } from './extension-manifest.schema.ts';
import { registerSdkResolution } from './sdk-resolve.ts';

const validateManifest = createAjv().compile(ExtensionManifestSchema);
const requireCache = createRequire(import.meta.url).cache;

/** A workflow loaded from an extension folder. */
export interface LoadedWorkflow {
  spec: DagSpec;
  extension: { name: string; version: string; dir: string };
  /** Absolute path of the module or JSON file it came from. */
  file: string;
}

export interface LoadedExtension {
  manifest: ExtensionManifest;
  dir: string;
  workflows: LoadedWorkflow[];
}

/** Reads and validates an extension folder's manifest, then loads and compiles every workflow it names. */
/** Reads and validates an extension folder's manifest (schema and semantic checks), without loading its workflows. */
export async function readManifest(dir: string): Promise<ExtensionManifest> {
  const manifestPath = join(dir, MANIFEST_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(manifestPath, 'utf8'));
  } catch (err) {
    throw new TesseraError('TESSERA_INVALID_MANIFEST', `${manifestPath}: cannot read the manifest: ${(err as Error).message}`, { cause: err });
  }
  if (!validateManifest(raw)) {
    const details = ajvErrorsToDetails(validateManifest.errors, MANIFEST_FILE);
    throw new TesseraError('TESSERA_INVALID_MANIFEST', `${manifestPath}: ${details.map((d) => `${d.where} ${d.message}`).join('; ')}`, { details });
  }
  const manifest = raw as ExtensionManifest;
  checkManifest(manifest, dir, manifestPath);
  return manifest;
}

/** Reads and validates an extension folder's manifest, then loads and compiles every workflow it names. */
export async function loadExtensionFolder(dir: string, options: { compiledOnly?: boolean } = {}): Promise<LoadedExtension> {
  const manifestPath = join(dir, MANIFEST_FILE);
  const manifest = await readManifest(dir);
  const workflows: LoadedWorkflow[] = [];
  for (const entry of manifest.workflows ?? []) {
    const file = resolve(dir, entry);
    if (isAbsolute(entry) || relative(dir, file).startsWith('..')) {
      throw new TesseraError('TESSERA_INVALID_MANIFEST', `${manifestPath}: workflow path "${entry}" must stay inside the extension folder`);
    }
    if (options.compiledOnly && !entry.endsWith('.json')) {
      // A package's workflows are compiled DAG specs: a module would be code run just to load it.
      throw new TesseraError('TESSERA_INVALID_PACKAGE', `${manifest.name}: workflow "${entry}" is a module, not a compiled DAG spec (.json); build the package with \`tessera ext build\``);
    }
    const spec = await loadWorkflowFile(file).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      // A TypeScript syntax error (esbuild's "Transform failed ...\n<file>:<line>:<col>: ERROR: <text>") reads best as file:line:col: text.
      const syntax = /^(\/[^\n]*?):(\d+):(\d+): ERROR: (.*)$/m.exec(message);
      if (syntax) {
        const where = `${relative(dir, syntax[1]!)}:${syntax[2]}:${syntax[3]}`;
        throw new TesseraError('TESSERA_INVALID_SPEC', `${manifest.name}: ${where}: ${syntax[4]}`, { cause: err, details: [{ where, message: syntax[4]! }] });
      }
      if (/Cannot find (package|module) '@tessera\/sdk'/.test(message)) {
        // A .ts file that Node loads as CommonJS resolves its imports where no hook of ours reaches.
        throw new TesseraError('TESSERA_INVALID_SPEC', `${manifest.name}: ${entry}: cannot import @tessera/sdk here: ` +
          `add "type": "module" to ${join(dir, 'package.json')} (tessera ext init writes it), so that the workflow loads as an ES module`, { cause: err });
      }
      throw new TesseraError(err instanceof TesseraError ? err.code : 'TESSERA_INVALID_SPEC', `${manifest.name}: ${entry}: ${message}`, {
        cause: err,
        details: err instanceof TesseraError ? err.details : [],
      });
    });
    workflows.push({ spec: withPullPolicies(spec, manifest), file, extension: { name: manifest.name, version: manifest.version, dir } });
  }
  for (const [i, trigger] of (manifest.triggers ?? []).entries()) {
    if (!workflows.some((w) => w.spec.id === trigger.workflow)) {
      throw new TesseraError('TESSERA_INVALID_MANIFEST', `${manifestPath}: triggers[${i}] starts workflow "${trigger.workflow}", which this extension does not provide (it provides ${workflows.map((w) => w.spec.id).join(', ')})`);
    }
  }
  return { manifest, dir, workflows };
}

/**
 * The spec with each container task's image_pull_policy filled in from the manifest: the
 * operator's own, else its image's entry in `images`, else the manifest's `image_pull_policy`.
 * Images the extension builds (with a context) are never pulled: "Never".
 */
export function withPullPolicies(spec: DagSpec, manifest: ExtensionManifest): DagSpec {
  const entries = new Map((manifest.images ?? []).map((i) => [i.name, i]));
  return {
    ...spec,
    tasks: spec.tasks.map((t) => {
      if (!t.container || t.container.image_pull_policy) return t;
      const entry = entries.get(t.container.image);
      const policy = entry?.context !== undefined ? 'Never' : (entry?.image_pull_policy ?? manifest.image_pull_policy);
      return policy ? { ...t, container: { ...t.container, image_pull_policy: policy } } : t;
    }),
  };
}

/** Environment variables of the operator contract (docs/guides/operator-contract.md). */
const CONTRACT_ENV = ['WORKFLOW_DIR', 'BATCH_NAME', 'OPERATOR_IN_DIR', 'OPERATOR_OUT_DIR', 'BATCHES_INPUT_DIR', 'RUN_ID', 'DAG_ID', 'TASK_ID', 'OPERATOR_LEVEL', 'EXTENSION_DIR'];

function refuse(manifestPath: string, where: string, message: string): TesseraError {
  return new TesseraError('TESSERA_INVALID_MANIFEST', `${manifestPath}: ${where} ${message}`, { details: [{ where, message }] });
}

function inside(dir: string, entry: string): boolean {
  return !isAbsolute(entry) && !relative(dir, resolve(dir, entry)).startsWith('..');
}

/** What the JSON Schema cannot say: kinds and their parts, version ranges, parameter defaults, image contexts. */
function checkManifest(m: ExtensionManifest, dir: string, manifestPath: string): void {
  if (!semver.valid(m.version)) throw refuse(manifestPath, 'version', `"${m.version}" is not a semantic version (e.g. 1.2.0, 1.2.0-rc.1)`);
  if (m.kind === 'workflow' && !m.workflows) throw refuse(manifestPath, 'workflows', 'is required for a workflow extension: name its workflow modules or DAG specs');
  if (m.kind === 'application' && !m.app) throw refuse(manifestPath, 'app', 'is required for an application extension: how to start it, its port, its health check');
  if (m.kind !== 'application' && m.app) throw refuse(manifestPath, 'app', `is only for application extensions; this one is a ${m.kind} extension`);
  if (m.app && !m.app.process && !m.app.container) throw refuse(manifestPath, 'app', 'needs "process" (a command) or "container" (an image and its port), or both');
  if (m.platform !== undefined) {
    if (!semver.validRange(m.platform)) throw refuse(manifestPath, 'platform', `"${m.platform}" is not a semver range (e.g. ">=0.1.0 <1")`);
    if (!semver.satisfies(PLATFORM_VERSION, m.platform, { includePrerelease: true })) {
      throw refuse(manifestPath, 'platform', `asks for Tessera ${m.platform}, and this is Tessera ${PLATFORM_VERSION}: install a version of "${m.name}" made for it`);
    }
  }
  for (const [name, range] of Object.entries(m.dependencies ?? {})) {
    if (!semver.validRange(range)) throw refuse(manifestPath, `dependencies.${name}`, `"${range}" is not a semver range`);
  }
  for (const [name, p] of Object.entries(m.parameters ?? {})) {
    const where = `parameters.${name}`;
    // Parameters reach tasks as environment variables: they must not replace the operator contract's.
    if (CONTRACT_ENV.includes(name.toUpperCase()) || name.toUpperCase().startsWith('TESSERA_')) {
      throw refuse(manifestPath, where, `would become the environment variable ${name.toUpperCase()}, which the operator contract sets; give the parameter a name of its own`);
    }
    const isList = p.type === 'list_single' || p.type === 'list_multi';
    if (isList && !p.options) throw refuse(manifestPath, where, `is a ${p.type} and needs "options"`);
    if (!isList && p.options) throw refuse(manifestPath, where, `is a ${p.type}, which takes no "options"`);
    if (p.default === undefined) continue;
    const ok =
      p.type === 'boolean' ? typeof p.default === 'boolean'
      : p.type === 'string' ? typeof p.default === 'string'
      : p.type === 'list_single' ? typeof p.default === 'string' && p.options!.includes(p.default)
      : Array.isArray(p.default) && p.default.every((v) => p.options!.includes(v));
    if (!ok) throw refuse(manifestPath, `${where}.default`, `${JSON.stringify(p.default)} does not fit a ${p.type}${isList ? ` of ${p.options!.join(', ')}` : ''}`);
  }
  const seenImages = new Map<string, number>();
  for (const [i, image] of (m.images ?? []).entries()) {
    const problem = imageReferenceProblem(image.name);
    if (problem) throw refuse(manifestPath, `images[${i}].name`, problem);
    const twice = seenImages.get(image.name);
    if (twice !== undefined) throw refuse(manifestPath, `images[${i}].name`, `"${image.name}" is listed twice (also images[${twice}])`);
    seenImages.set(image.name, i);
    if (image.context === undefined) {
      if (image.dockerfile !== undefined) throw refuse(manifestPath, `images[${i}].dockerfile`, 'needs a "context" to build from; an image without one is pulled from its registry');
      if (image.embed && image.image_pull_policy === 'Never') throw refuse(manifestPath, `images[${i}].embed`, 'needs a pull at build time, which image_pull_policy "Never" forbids');
      continue;
    }
    if (image.embed !== undefined) throw refuse(manifestPath, `images[${i}].embed`, 'is only for registry images (without "context"); a built image is embedded unless the package is built with --no-images');
    if (image.image_pull_policy !== undefined) throw refuse(manifestPath, `images[${i}].image_pull_policy`, 'is only for registry images (without "context"); a built image is never pulled');
    if (!inside(dir, image.context)) throw refuse(manifestPath, `images[${i}].context`, `"${image.context}" must stay inside the extension folder`);
    if (!existsSync(resolve(dir, image.context))) throw refuse(manifestPath, `images[${i}].context`, `"${image.context}" does not exist`);
    if (image.dockerfile !== undefined && !inside(resolve(dir, image.context), image.dockerfile)) {
      throw refuse(manifestPath, `images[${i}].dockerfile`, `"${image.dockerfile}" must stay inside its context`);
    }
  }
}

/** Loads one workflow: a JSON DAG spec, or a module whose default export has `toDagSpec()` (or is a spec). */
export async function loadWorkflowFile(file: string): Promise<DagSpec> {
  if (!existsSync(file)) throw new Error(`file not found: ${file}`);
  if (file.endsWith('.json')) return validateDagSpec(JSON.parse(await readFile(file, 'utf8')));
  // The mtime in the URL makes a changed ES module load anew instead of from the module
  // cache; a .ts file outside a "type": "module" package loads as CommonJS, whose cache
  // is keyed by path, so drop it there too. Modules it imports in turn stay cached
  // until the server restarts.
  registerSdkResolution();
  const { mtimeMs } = await stat(file);
  delete requireCache[file];
  const mod = (await import(`${pathToFileURL(file).href}?v=${mtimeMs}`)) as { default?: unknown };
  const exported = mod.default as { toDagSpec?: () => unknown } | undefined;
  if (exported === undefined) throw new Error('the module has no default export; export default defineWorkflow(...)');
  if (typeof exported === 'function') {
    throw new Error('the default export is a function; export the workflow itself: export default defineWorkflow(...)');
  }
  return typeof exported.toDagSpec === 'function' ? validateDagSpec(exported.toDagSpec()) : validateDagSpec(exported);
}

/** Extension folders directly under a root (folders that hold a manifest). */
export async function findExtensionFolders(root: string): Promise<string[]> {
  if (!existsSync(root)) return [];
  const entries = await readdir(root, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && existsSync(join(root, e.name, MANIFEST_FILE)))
    .map((e) => join(root, e.name))
    .sort();
}
