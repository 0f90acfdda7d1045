import { seriesTagsJson, tagOfKeyword, tagHex, typedTags, type DicomJson, type DicomService, type SeriesEvent } from '@tessera/dicom';
import type { DagScheduler } from '@tessera/engine';
import type { WorkflowRegistry } from '@tessera/extension-packages';
import type { ProjectStore } from '../projects/project-store.ts';

function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/** Whether a typed value meets a condition (one of the values, wildcards allowed; any value of a multi-valued attribute). */
export function meets(value: unknown, wanted: string | string[]): boolean {
  const values = (Array.isArray(value) ? value : [value]).filter((v) => v !== null && v !== undefined).map(String);
  const patterns = (Array.isArray(wanted) ? wanted : [wanted]).map(globToRegExp);
  return values.some((v) => patterns.some((p) => p.test(v)));
}

/**
 * Arrival events: when a series has fully arrived (the quiet period passed), every
 * extension trigger whose conditions it meets starts its workflow on that series,
 * in the series' project. Problems are logged; ingest is never held up.
 */
export function startArrivalTriggers(o: { dicom: DicomService; registry: WorkflowRegistry; scheduler: DagScheduler; projects: ProjectStore; log: (m: string) => void }): { stop: () => void } {
  const onComplete = (e: SeriesEvent): void => {
    void fire(e).catch((err: Error) => o.log(`arrival trigger for series ${e.seriesUid} failed: ${err.message}`));
  };
  const fire = async (e: SeriesEvent): Promise<void> => {
    const triggers = o.registry.extensions().flatMap((ext) => (ext.manifest.triggers ?? []).map((t) => ({ ext, t })));
    if (triggers.length === 0) return;
    const tagsJson = await seriesTagsJson(o.dicom.db, e.projectId, e.seriesUid);
    const project = await o.projects.findById(e.projectId);
    if (!tagsJson || !project) return;
    const json = JSON.parse(tagsJson) as DicomJson;
    const tags = typedTags(json);
    for (const { ext, t } of triggers) {
      if (t.projects && !t.projects.includes(project.name)) continue;
      let ok = true;
      for (const [keyword, wanted] of Object.entries(t.when)) {
        const tag = tagOfKeyword(keyword);
        if (tag === undefined && !/^[0-9A-Fa-f]{8}$/.test(keyword)) {
          o.log(`extension "${ext.manifest.name}": trigger condition "${keyword}" is not a DICOM keyword; the trigger never fires`);
          ok = false;
          break;
        }
        const key = tag === undefined ? keyword.toUpperCase() : tagHex(tag);
        const typedKey = Object.keys(tags).find((k) => k === keyword) ?? key;
        if (!meets(tags[typedKey] ?? tags[key], wanted)) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      const workflow = o.registry.list().find((w) => w.spec.id === t.workflow && w.extension.name === ext.manifest.name);
      if (!workflow) continue;
      const { job } = await o.scheduler.trigger({
        project,
        workflow: { spec: workflow.spec, extensionDir: workflow.extension.dir },
        conf: { workflow_form: t.workflow_form ?? {}, data_form: { identifiers: [e.seriesUid] } },
      });
      o.log(`series ${e.seriesUid} arrived in project "${project.name}": started workflow "${t.workflow}" (job ${job.id}) by a trigger of extension "${ext.manifest.name}"`);
    }
  };
  o.dicom.on('series-complete', onComplete);
  return { stop: () => o.dicom.off('series-complete', onComplete) };
}
