import semver from 'semver';
import { TesseraError, pythonStr } from '@tessera/model';
import { findExtensionFolders, loadExtensionFolder, type LoadedExtension, type LoadedWorkflow } from './extension-loader.ts';
import { resolveTaskTemplates, type ProcessingContainerReader } from './task-api/resolve-templates.ts';

/** An extension that could not be loaded, and why. */
export interface ExtensionProblem {
  dir: string;
  message: string;
}

/** An installed extension: its loaded folder and the parameter values it was installed with. */
export interface InstalledExtension {
  extension: LoadedExtension;
  params: Record<string, unknown>;
}

/**
 * The workflows the platform knows: those of the installed extensions, plus every
 * extension folder under the linked roots (TESSERA_EXTENSIONS_DIRS, loaded as they are
 * on disk). A broken extension is reported, never fatal. Installing or uninstalling
 * changes the workflows at once, without reading any other extension again.
 */
export class WorkflowRegistry {
  readonly roots: string[];
  #linked: LoadedExtension[] = [];
  #linkedProblems: ExtensionProblem[] = [];
  #installed = new Map<string, InstalledExtension>();
  #workflows = new Map<string, LoadedWorkflow>();
  #extensions: LoadedExtension[] = [];
  #problems: ExtensionProblem[] = [];

  readonly #readProcessingContainer: ProcessingContainerReader | undefined;

  /** `processingContainers`: reads a Task API image's /processing-container.json (none without a Docker engine). */
  constructor(options: { roots: string[]; processingContainers?: ProcessingContainerReader }) {
    this.roots = options.roots;
    this.#readProcessingContainer = options.processingContainers;
  }

  /**
   * Expands the Task API tasks that name only their template, from their images'
   * /processing-container.json. `strict` (install) throws at the first problem; otherwise
   * a task that cannot be expanded keeps the reason, and a run of it fails with it.
   */
  resolveTaskTemplates(ext: LoadedExtension, options: { strict: boolean }): Promise<LoadedExtension> {
    return resolveTaskTemplates(ext, this.#readProcessingContainer, options);
  }

  /** Loads the linked folders again (picks up new and changed workflows there). */
  async reload(): Promise<{ extensions: number; workflows: number; problems: ExtensionProblem[] }> {
    const linked: LoadedExtension[] = [];
    const problems: ExtensionProblem[] = [];
    for (const root of this.roots) {
      for (const dir of await findExtensionFolders(root)) {
        try {
          // Linked folders are not installed: their templates are read from images the engine already holds.
          linked.push(await this.resolveTaskTemplates(await loadExtensionFolder(dir), { strict: false }));
        } catch (err) {
          problems.push({ dir, message: (err as Error).message });
        }
      }
    }
    this.#linked = linked;
    this.#linkedProblems = problems;
    this.#rebuild();
    return { extensions: this.#extensions.length, workflows: this.#workflows.size, problems: this.#problems };
  }

  /** Makes an installed extension's workflows available (replacing the version installed before). */
  install(name: string, installed: InstalledExtension): void {
    this.#installed.set(name, installed);
    this.#rebuild();
  }

  uninstall(name: string): void {
    this.#installed.delete(name);
    this.#rebuild();
  }

  /** The install parameter values of an installed extension ({} for linked or unknown ones). */
  installedParams(name: string): Record<string, unknown> {
    return this.#installed.get(name)?.params ?? {};
  }

  /** Extensions from the linked roots (not managed by installs). */
  linked(): LoadedExtension[] {
    return this.#linked;
  }

  #rebuild(): void {
    const workflows = new Map<string, LoadedWorkflow>();
    const problems = [...this.#linkedProblems];
    const candidates: LoadedExtension[] = [];
    const add = (ext: LoadedExtension, params: Record<string, unknown>): void => {
      const env = paramsEnv(params);
      const withParams = Object.keys(env).length === 0 ? ext : {
        ...ext,
        workflows: ext.workflows.map((wf) => ({ ...wf, spec: { ...wf.spec, tasks: wf.spec.tasks.map((t) => ({ ...t, env: { ...env, ...t.env } })) } })),
      };
      candidates.push(withParams);
    };
    for (const ext of this.#linked) add(ext, {});
    for (const { extension, params } of this.#installed.values()) {
      if (this.#linked.some((l) => l.manifest.name === extension.manifest.name)) {
        problems.push({ dir: extension.dir, message: `extension "${extension.manifest.name}" is installed and also in a linked folder; the linked folder wins` });
        continue;
      }
      add(extension, params);
    }
    // An extension whose dependencies are not there (in a version its range takes) does not
    // load; again until nothing changes, since that may leave another one without its own.
    const extensions = [...candidates];
    for (let changed = true; changed; ) {
      changed = false;
      for (const ext of [...extensions]) {
        const missing = Object.entries(ext.manifest.dependencies ?? {}).filter(
          ([name, range]) => !extensions.some((o) => o.manifest.name === name && semver.satisfies(o.manifest.version, range, { includePrerelease: true })),
        );
        if (missing.length === 0) continue;
        problems.push({
          dir: ext.dir,
          message: `extension "${ext.manifest.name}" needs ${missing.map(([n, r]) => `"${n}" ${r}`).join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not installed in a matching version`,
        });
        extensions.splice(extensions.indexOf(ext), 1);
        changed = true;
      }
    }
    for (const ext of extensions) {
      for (const wf of ext.workflows) {
        const taken = workflows.get(wf.spec.id);
        if (taken) {
          problems.push({ dir: ext.dir, message: `workflow "${wf.spec.id}" is also defined by extension "${taken.extension.name}" (${taken.extension.dir}); ignored here` });
          continue;
        }
        workflows.set(wf.spec.id, wf);
      }
    }
    this.#workflows = workflows;
    this.#extensions = extensions;
    this.#problems = problems;
  }

  list(): LoadedWorkflow[] {
    return [...this.#workflows.values()].sort((a, b) => a.spec.id.localeCompare(b.spec.id));
  }

  /** Every extension whose workflows are available (installed and linked). */
  extensions(): LoadedExtension[] {
    return this.#extensions;
  }

  problems(): ExtensionProblem[] {
    return this.#problems;
  }

  get(id: string): LoadedWorkflow {
    const wf = this.#workflows.get(id);
    if (!wf) {
      const known = [...this.#workflows.keys()].sort();
      throw new TesseraError(
        'TESSERA_NOT_FOUND',
        `workflow "${id}" does not exist${known.length ? `; known workflows: ${known.join(', ')}` : '; no workflows are installed'}` +
          '. Install the extension that provides it: tessera ext list shows the catalog',
      );
    }
    return wf;
  }
}

/** Install parameters reach every task of the extension as environment variables: KEY uppercased, value as Python's str() (like workflow_form). */
export function paramsEnv(params: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k.toUpperCase(), pythonStr(v)]));
}
