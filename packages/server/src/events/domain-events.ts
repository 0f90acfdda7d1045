import type { DicomService, IndexedInstance, SeriesEvent } from '@tessera/dicom';
import type { DagScheduler, RunRow, TaskRow } from '@tessera/engine';
import type { ProjectStore } from '../projects/project-store.ts';
import { SERIES_UIDS_MAX, type EventBus } from './event-bus.ts';

/** Project names by id, cached (a project is never renamed). */
export function projectNames(projects: ProjectStore): (id: string) => Promise<string> {
  const names = new Map<string, string>();
  return async (id) => {
    let name = names.get(id);
    if (name === undefined) {
      name = (await projects.findById(id))?.name ?? id;
      names.set(id, name);
    }
    return name;
  };
}

/** Runs callbacks one after the other, so that events keep their order across awaits. */
function serial(onError: (err: Error) => void): (fn: () => Promise<void>) => void {
  let chain = Promise.resolve();
  return (fn) => {
    chain = chain.then(fn).catch(onError);
  };
}

/** Run and task state changes of the scheduler to the bus. Attach before the scheduler starts (recovery changes states too). */
export function publishWorkflowEvents(o: { bus: EventBus; scheduler: DagScheduler; projectName: (id: string) => Promise<string>; onError: (err: Error) => void }): () => void {
  const { bus, scheduler } = o;
  const enqueue = serial(o.onError);
  /** The project of each run seen, for its tasks' events. */
  const runProject = new Map<string, string>();
  const onRun = (row: RunRow): void => {
    // The row is live (the scheduler changes it): take what is published now.
    const { id, job_id: job, workflow_id: workflow, state, attempt, project_id: projectId } = row;
    runProject.set(id, projectId);
    if (runProject.size > 10_000) runProject.delete(runProject.keys().next().value!);
    enqueue(async () => bus.publish({ type: 'run', project: await o.projectName(projectId), id, job, workflow, state, attempt }));
  };
  const onTask = (runId: string, row: TaskRow): void => {
    const { task_id: id, state, try_number, attempt } = row;
    enqueue(async () => {
      const projectId = runProject.get(runId) ?? (await scheduler.store.getRun(runId))?.project_id;
      if (projectId === undefined) return;
      bus.publish({ type: 'task', project: await o.projectName(projectId), run: runId, id, state, try_number, attempt });
    });
  };
  scheduler.on('run', onRun);
  scheduler.on('task', onTask);
  return () => {
    scheduler.off('run', onRun);
    scheduler.off('task', onTask);
  };
}

interface SeriesWindow {
  instances: number;
  duplicates: number;
  stored: Set<string>;
  completed: Set<string>;
  deleted: Set<string>;
  datasets: Set<string>;
  truncated: boolean;
}

/**
 * Series stored, completed and deleted, coalesced per project: at most one `series`
 * event per project every `windowMs` (a large import is a few events a second, not
 * one per instance), and a `dataset` `changed` event for each dataset an ingest added to.
 */
export function publishSeriesEvents(o: { bus: EventBus; dicom: DicomService; projectName: (id: string) => Promise<string>; windowMs: number; onError: (err: Error) => void }): () => void {
  const { bus, dicom } = o;
  const windows = new Map<string, SeriesWindow>();
  let timer: NodeJS.Timeout | undefined;
  const enqueue = serial(o.onError);

  const windowOf = (projectId: string): SeriesWindow => {
    let w = windows.get(projectId);
    if (!w) {
      w = { instances: 0, duplicates: 0, stored: new Set(), completed: new Set(), deleted: new Set(), datasets: new Set(), truncated: false };
      windows.set(projectId, w);
    }
    timer ??= setTimeout(flush, o.windowMs);
    return w;
  };
  const add = (w: SeriesWindow, set: Set<string>, uid: string): void => {
    if (set.has(uid)) return;
    if (set.size >= SERIES_UIDS_MAX) w.truncated = true;
    else set.add(uid);
  };
  const flush = (): void => {
    timer = undefined;
    const taken = [...windows];
    windows.clear();
    enqueue(async () => {
      for (const [projectId, w] of taken) {
        const project = await o.projectName(projectId);
        bus.publish({
          type: 'series', project, state: 'changed', instances: w.instances, duplicates: w.duplicates,
          stored: [...w.stored], completed: [...w.completed], deleted: [...w.deleted], truncated: w.truncated,
        });
        for (const name of w.datasets) bus.publish({ type: 'dataset', project, name, state: 'changed' });
      }
    });
  };

  const onIndexed = (list: IndexedInstance[]): void => {
    for (const i of list) {
      const w = windowOf(i.projectId);
      if (i.status === 'duplicate') w.duplicates++;
      else {
        w.instances++;
        add(w, w.stored, i.seriesUid);
      }
      if (i.datasetName && w.datasets.size < SERIES_UIDS_MAX) w.datasets.add(i.datasetName);
    }
  };
  const onComplete = (e: SeriesEvent): void => {
    const w = windowOf(e.projectId);
    add(w, w.completed, e.seriesUid);
  };
  const onDeleted = (e: SeriesEvent): void => {
    const w = windowOf(e.projectId);
    add(w, w.deleted, e.seriesUid);
  };
  dicom.store.on('indexed', onIndexed);
  dicom.on('series-complete', onComplete);
  dicom.on('series-deleted', onDeleted);
  return () => {
    dicom.store.off('indexed', onIndexed);
    dicom.off('series-complete', onComplete);
    dicom.off('series-deleted', onDeleted);
    if (timer) {
      clearTimeout(timer);
      flush();
    }
  };
}
