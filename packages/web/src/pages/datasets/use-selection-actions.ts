import { useState } from 'react';
import { del, post, type Dataset, type DeleteSeriesResult } from '../../api.ts';
import { useApp } from '../../context.ts';
import { useAction } from '../../hooks.ts';
import { filtersToBody, type Filters } from './dataset-filters.ts';

/** The dialog open over the gallery, if any. */
export type SelectionDialog = 'create' | 'add' | 'delete';

interface Options {
  filters: Filters;
  /** How many series match the filters (a dataset made of "all matching" says so). */
  total: number | undefined;
  /** The gallery's pages changed on the server: show them again. */
  refresh: () => void;
  /** The datasets (and their counts) changed: fetch the list again. */
  reloadDatasets: () => void;
}

/**
 * What the toolbar and its dialogs do with the selection: make a dataset of it (or of the
 * whole query), add it to or remove it from a dataset, delete its series. One `useAction`
 * for all, so the error shows in the open dialog, or under the toolbar when none is open.
 */
export function useSelectionActions({ filters, total, refresh, reloadDatasets }: Options) {
  const { project, selection, setSelection, report, notify } = useApp();
  const [dialog, setDialog] = useState<SelectionDialog | undefined>(undefined);
  const selected = [...selection];
  const action = useAction();
  const close = () => {
    setDialog(undefined);
    action.setError(undefined);
  };

  const create = (name: string, description: string, all: boolean) =>
    action.run(async () => {
      const created = await post<Dataset>('/api/datasets', { name, description: description || undefined, ...(all ? { query: filtersToBody(filters) } : { series: selected }) }, { project });
      notify(`dataset ${name} created with ${created.series_count ?? (all ? total : selected.length)} series`);
      close();
      reloadDatasets();
    });

  const addTo = (name: string) =>
    action.run(async () => {
      await post(`/api/datasets/${encodeURIComponent(name)}/series`, { series: selected }, { project });
      notify(`${selected.length} series added to ${name}`);
      close();
      reloadDatasets();
    });

  const removeFromDataset = () =>
    action.run(async () => {
      await del(`/api/datasets/${encodeURIComponent(filters.dataset)}/series`, { series: selected }, { project });
      notify(`${selected.length} series removed from ${filters.dataset}`);
      setSelection(new Set());
      refresh();
      reloadDatasets();
    });

  const deleteSelected = () =>
    action.run(async () => {
      const r = await post<DeleteSeriesResult>('/api/series/delete', { series: selected, project });
      const failed = r.results.filter((x) => x.error);
      if (failed.length) report(new Error(`${failed.length} series were not deleted: ${failed.map((x) => x.error).join('; ')}`));
      notify(`${r.deleted} series deleted`);
      setSelection(new Set());
      close();
      refresh();
    });

  return { dialog, open: setDialog, close, selected, busy: action.busy, error: action.error, create, addTo, removeFromDataset, deleteSelected };
}

export type SelectionActions = ReturnType<typeof useSelectionActions>;
