import { useEffect, useMemo, useRef, useState } from 'react';
import { get, qs, type Answer, type SeriesFacets } from '../api.ts';
import { useApp } from '../context.ts';
import { ErrorBox } from '../components/Dialog.tsx';
import type { GridHandle } from '../components/VirtualGrid.tsx';
import { useLoad } from '../hooks.ts';
import { EMPTY_FILTERS, filtersFromSearch, filtersToQuery, isFiltered, withFacetToggled, type FacetKey, type Filters, type SetFilter } from './datasets/dataset-filters.ts';
import { FacetSidebar } from './datasets/FacetSidebar.tsx';
import { GalleryStatusBar } from './datasets/GalleryStatusBar.tsx';
import { GalleryToolbar } from './datasets/GalleryToolbar.tsx';
import { SelectionDialogs } from './datasets/SelectionDialogs.tsx';
import { SeriesGallery } from './datasets/SeriesGallery.tsx';
import { useGallerySelection } from './datasets/use-gallery-selection.ts';
import { useSeriesPages } from './datasets/use-series-pages.ts';
import { useSelectionActions } from './datasets/use-selection-actions.ts';

/**
 * The series store as a gallery: facets and search on the left, a virtualised grid of thumbnails.
 * This file composes the parts in ./datasets/ and holds the state they share: the filters.
 * Default export because App.tsx imports the page that way (the first page stays in the main bundle).
 */
export default function Datasets() {
  const { project, selection, setSelection } = useApp();
  const [filters, setFilters] = useState<Filters>(() => filtersFromSearch(location.search));
  const [text, setText] = useState(filters.q);
  const query = useMemo(() => filtersToQuery(filters, project), [filters, project]);
  const queryKey = qs(query) + filters.sort;

  const series = useSeriesPages({ query, sort: filters.sort, queryKey });
  const facets = useLoad((signal) => get<SeriesFacets>('/api/series/facets', query, { signal }), [queryKey], ['series']);
  const datasets = useLoad((signal) => get<Answer<'datasets', 'list'>>('/api/datasets', { project, limit: 1000, sort: 'name', order: 'asc' }, { signal }), [project], ['datasets', 'series']);

  const grid = useRef<GridHandle>(null);
  const count = series.total ?? 0;
  const { focus, onItemClick, onKeyDown } = useGallerySelection({ grid, count, itemAt: series.itemAt, loadedUids: series.loadedUids, selection, setSelection });
  const actions = useSelectionActions({ filters, total: series.total, refresh: series.refresh, reloadDatasets: datasets.reload });

  const setFilter: SetFilter = (k, v) => setFilters((f) => ({ ...f, [k]: v }));
  const toggleFacet = (k: FacetKey, v: string) => setFilters((f) => withFacetToggled(f, k, v));

  // The search box filters a moment after typing stops, not at every key.
  useEffect(() => {
    const t = setTimeout(() => setFilters((f) => (f.q === text ? f : { ...f, q: text })), 250);
    return () => clearTimeout(t);
  }, [text]);

  const dsList = datasets.data?.items ?? [];

  return (
    <div className="datasets">
      <FacetSidebar
        filters={filters}
        setFilter={setFilter}
        toggleFacet={toggleFacet}
        facets={facets}
        datasets={{ list: dsList, error: datasets.error, reload: datasets.reload }}
        onClear={() => (setFilters(EMPTY_FILTERS), setText(''))}
      />
      <section className="gallery-wrap" aria-label="Series">
        <GalleryToolbar
          text={text}
          onText={setText}
          filters={filters}
          setFilter={setFilter}
          selectionSize={selection.size}
          total={series.total}
          datasetCount={dsList.length}
          onOpen={actions.open}
          onRemoveFromDataset={() => void actions.removeFromDataset()}
        />
        {!actions.dialog && <ErrorBox error={actions.error} />}
        <ErrorBox error={series.error} />
        <SeriesGallery
          grid={grid}
          total={series.total}
          project={project}
          filtered={isFiltered(query, project)}
          itemAt={series.itemAt}
          selection={selection}
          focus={focus}
          onRange={series.ensureRange}
          onKeyDown={onKeyDown}
          onItemClick={onItemClick}
        />
        <GalleryStatusBar total={series.total} focused={series.itemAt(focus)} selection={selection} project={project} onClearSelection={() => setSelection(new Set())} />
      </section>
      <SelectionDialogs actions={actions} datasets={dsList} matching={count} project={project} />
    </div>
  );
}
