import semver from 'semver';
import { TesseraError } from '@tessera/model';
import { findExtensionFolders, loadExtensionFolder, type LoadedExtension, type LoadedWorkflow } from './extension-loader.ts';

/** An extension that could not be loaded, and why. */
export interface ExtensionProblem {
  dir: string;
  message: string;
}

/**
 * The workflows the platform knows, loaded from extension folders under the
 * configured roots. A broken extension is reported, never fatal.
 */
export class WorkflowRegistry {
  readonly roots: string[];
  #workflows = new Map<string, LoadedWorkflow>();
  #extensions: LoadedExtension[] = [];
  #problems: ExtensionProblem[] = [];

  constructor(options: { roots: string[] }) {
    this.roots = options.roots;
  }

  /** Loads every extension folder again (picks up new and changed workflows). */
  async reload(): Promise<{ extensions: number; workflows: number; problems: ExtensionProblem[] }> {
    const workflows = new Map<string, LoadedWorkflow>();
    const extensions: LoadedExtension[] = [];
    const problems: ExtensionProblem[] = [];
    for (const root of this.roots) {
      for (const dir of await findExtensionFolders(root)) {
        try {
          const ext = await loadExtensionFolder(dir);
          for (const wf of ext.workflows) {
            const taken = workflows.get(wf.spec.id);
            if (taken) {
              problems.push({ dir, message: `workflow "${wf.spec.id}" is also defined by extension "${taken.extension.name}" (${taken.extension.dir}); ignored here` });
              continue;
            }
            workflows.set(wf.spec.id, wf);
          }
          extensions.push(ext);
        } catch (err) {
          problems.push({ dir, message: (err as Error).message });
        }
      }
    }
    // An extension whose dependencies are not there (in a version its range takes) does not
    // load; again until nothing changes, since that may leave another one without its own.
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
      for (const wf of ext.workflows) if (workflows.get(wf.spec.id) === wf) workflows.delete(wf.spec.id);
      changed = true;
    }
    }
    this.#workflows = workflows;
    this.#extensions = extensions;
    this.#problems = problems;
    return { extensions: extensions.length, workflows: workflows.size, problems };
  }

  list(): LoadedWorkflow[] {
    return [...this.#workflows.values()].sort((a, b) => a.spec.id.localeCompare(b.spec.id));
  }

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
        `workflow "${id}" does not exist${known.length ? `; known workflows: ${known.join(', ')}` : '; no workflows are installed'}`,
      );
    }
    return wf;
  }
}
