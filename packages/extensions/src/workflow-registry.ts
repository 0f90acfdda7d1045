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
