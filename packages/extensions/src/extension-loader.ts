import { existsSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { TesseraError, ajvErrorsToDetails, createAjv, validateDagSpec, type DagSpec } from '@tessera/model';
import { ExtensionManifestSchema, MANIFEST_FILE, type ExtensionManifest } from './extension-manifest.schema.ts';

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
export async function loadExtensionFolder(dir: string): Promise<LoadedExtension> {
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
  const workflows: LoadedWorkflow[] = [];
  for (const entry of manifest.workflows) {
    const file = resolve(dir, entry);
    if (isAbsolute(entry) || relative(dir, file).startsWith('..')) {
      throw new TesseraError('TESSERA_INVALID_MANIFEST', `${manifestPath}: workflow path "${entry}" must stay inside the extension folder`);
    }
    const spec = await loadWorkflowFile(file).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      throw new TesseraError(err instanceof TesseraError ? err.code : 'TESSERA_INVALID_SPEC', `${manifest.name}: ${entry}: ${message}`, {
        cause: err,
        details: err instanceof TesseraError ? err.details : [],
      });
    });
    workflows.push({ spec, file, extension: { name: manifest.name, version: manifest.version, dir } });
  }
  for (const [i, trigger] of (manifest.triggers ?? []).entries()) {
    if (!workflows.some((w) => w.spec.id === trigger.workflow)) {
      throw new TesseraError('TESSERA_INVALID_MANIFEST', `${manifestPath}: triggers[${i}] starts workflow "${trigger.workflow}", which this extension does not provide (it provides ${workflows.map((w) => w.spec.id).join(', ')})`);
    }
  }
  return { manifest, dir, workflows };
}

/** Loads one workflow: a JSON DAG spec, or a module whose default export has `toDagSpec()` (or is a spec). */
export async function loadWorkflowFile(file: string): Promise<DagSpec> {
  if (!existsSync(file)) throw new Error(`file not found: ${file}`);
  if (file.endsWith('.json')) return validateDagSpec(JSON.parse(await readFile(file, 'utf8')));
  // The mtime in the URL makes a changed ES module load anew instead of from the module
  // cache; a .ts file outside a "type": "module" package loads as CommonJS, whose cache
  // is keyed by path, so drop it there too. Modules it imports in turn stay cached
  // until the server restarts.
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
