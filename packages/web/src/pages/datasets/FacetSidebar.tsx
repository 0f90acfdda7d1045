import { useState } from 'react';
import { del, qs, type Dataset, type SeriesFacets } from '../../api.ts';
import { useApp } from '../../context.ts';
import { ErrorBox } from '../../components/Dialog.tsx';
import { FACET_KEYS, facetTitle, isTagFilter, type FacetKey, type Filters, type SetFilter } from './dataset-filters.ts';

interface Props {
  filters: Filters;
  setFilter: SetFilter;
  toggleFacet: (key: FacetKey, value: string) => void;
  facets: { data?: SeriesFacets | undefined; error: string | undefined };
  datasets: { list: Dataset[]; error: string | undefined; reload: () => void };
  /** Clear filters: the search text lives in the toolbar, so the page clears both. */
  onClear: () => void;
}

/** The left column: the dataset to look into (with its download and delete), facets with counts, study dates, tag filters. */
export function FacetSidebar({ filters, setFilter, toggleFacet, facets, datasets, onClear }: Props) {
  const { project, report, notify } = useApp();
  const [tagInput, setTagInput] = useState('');

  const addTag = () => {
    const t = tagInput.trim();
    if (!t) return;
    if (!isTagFilter(t)) {
      report(new Error(`a tag filter is Keyword=value, e.g. SliceThickness=1.25 or PatientAge=*Y (not "${t}")`));
      return;
    }
    setFilter('tags', [...filters.tags, t]);
    setTagInput('');
  };

  const deleteDataset = async () => {
    if (!confirm(`Delete the dataset "${filters.dataset}"? Its series stay in the store.`)) return;
    await del(`/api/datasets/${encodeURIComponent(filters.dataset)}`, undefined, { project }).then(() => {
      notify(`dataset ${filters.dataset} deleted`);
      setFilter('dataset', '');
      datasets.reload();
    }, report);
  };

  return (
    <aside className="sidebar" aria-label="Filters">
      <h3>Dataset</h3>
      <select aria-label="Dataset" value={filters.dataset} onChange={(e) => setFilter('dataset', e.target.value)} style={{ width: '100%' }}>
        <option value="">All series</option>
        {datasets.list.map((d) => (
          <option key={d.name} value={d.name}>
            {d.name} ({d.series_count ?? 0})
          </option>
        ))}
      </select>
      <ErrorBox error={datasets.error} />
      {filters.dataset && (
        <div className="row small" style={{ marginTop: 6 }}>
          <a href={`/api/datasets/${encodeURIComponent(filters.dataset)}/download${qs({ project })}`}>Download .zip</a>
          <button className="danger" onClick={() => void deleteDataset()}>
            Delete dataset
          </button>
        </div>
      )}
      {FACET_KEYS.map((k) => (
        <div key={k} role="group" aria-label={k.replace('_', ' ')}>
          <h3>{facetTitle(k)}</h3>
          {(facets.data?.[k] ?? []).slice(0, 30).map((f) => (
            <label key={String(f.value)} className="facet">
              <input type="checkbox" checked={filters[k].includes(f.value ?? '')} disabled={f.value === null} onChange={() => toggleFacet(k, f.value ?? '')} />
              <span>{f.value ?? <i className="muted">none</i>}</span>
              <span className="count">{f.count.toLocaleString()}</span>
            </label>
          ))}
          {facets.data && facets.data[k].length === 0 && <div className="muted small">—</div>}
        </div>
      ))}
      <ErrorBox error={facets.error} />
      <h3>Study date</h3>
      <label className="field small">
        From
        <input type="date" value={filters.study_date_from} onChange={(e) => setFilter('study_date_from', e.target.value)} />
      </label>
      <label className="field small">
        To
        <input type="date" value={filters.study_date_to} onChange={(e) => setFilter('study_date_to', e.target.value)} />
      </label>
      <h3>Tags</h3>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          addTag();
        }}
      >
        <input aria-label="Tag filter" placeholder="SliceThickness=1.25" value={tagInput} onChange={(e) => setTagInput(e.target.value)} style={{ flex: 1 }} />
        <button type="submit">Add</button>
      </form>
      <p className="muted small">Keyword=value; * and ? wildcards, &gt;=n, &lt;=n, date ranges 20200101-20201231.</p>
      <button onClick={onClear} style={{ marginTop: 8 }}>
        Clear filters
      </button>
    </aside>
  );
}
