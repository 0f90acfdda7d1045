import { expandTaskTemplates, pendingTaskTemplates, TesseraError, validateDagSpec, type ProcessingContainer } from '@tessera/model';
import type { LoadedExtension } from '../extension-loader.ts';

/** Reads `/processing-container.json` from an image the engine holds (ImageTool.processingContainer). */
export type ProcessingContainerReader = (image: string) => Promise<ProcessingContainer>;

/**
 * Expands the Task API tasks of an extension's workflows whose operator named only a
 * template (`container.task_template`, defineTaskOperator without processingContainer):
 * reads `/processing-container.json` from each image once, and expands each task with the
 * same function defineTaskOperator uses. `strict` (install): any problem throws, naming the
 * extension, workflow, task, image and template. Otherwise (loading an installed or linked
 * extension) a task that cannot be expanded keeps its reference and the reason, and a run
 * of it fails with that reason.
 */
export async function resolveTaskTemplates(ext: LoadedExtension, read: ProcessingContainerReader | undefined, options: { strict: boolean }): Promise<LoadedExtension> {
  const images = new Set(ext.workflows.flatMap((w) => pendingTaskTemplates(w.spec).map((p) => p.image)));
  if (images.size === 0) return ext;
  const containers = new Map<string, ProcessingContainer | Error>();
  for (const image of images) {
    if (!read) {
      const reason = `no Docker engine is reachable to read /processing-container.json from image "${image}"`;
      if (options.strict) throw new TesseraError('TESSERA_DOCKER', `${ext.manifest.name}: ${reason}; its Task API tasks name only their template: start Docker (or set DOCKER_HOST) and restart the server`);
      containers.set(image, new Error(reason));
      continue;
    }
    try {
      containers.set(image, await read(image));
    } catch (err) {
      if (options.strict) {
        const e = err as TesseraError;
        throw new TesseraError(e.code ?? 'TESSERA_DOCKER', `${ext.manifest.name}: the task templates of image "${image}" cannot be read: ${e.message}`, { cause: err });
      }
      containers.set(image, err as Error);
    }
  }
  const workflows = ext.workflows.map((w) => {
    try {
      return { ...w, spec: validateDagSpec(expandTaskTemplates(w.spec, containers, options)) };
    } catch (err) {
      const e = err as TesseraError;
      throw new TesseraError(e.code ?? 'TESSERA_INVALID_SPEC', `${ext.manifest.name}: ${e.message}`, { cause: err });
    }
  });
  return { ...ext, workflows };
}
