import { useCallback, useEffect, useMemo, useRef, useState, type KeyboardEvent, type MouseEvent } from 'react';
import { del, get, post, qs, type Dataset, type Facets, type Page, type Query, type Series } from '../api.ts';
import { useApp } from '../context.ts';
import { Dialog, ErrorBox, FormDialog } from '../components/Dialog.tsx';
import { VirtualGrid, type GridHandle } from '../components/VirtualGrid.tsx';
import { formatBytes } from '../components/StateBadge.tsx';
import { useAction, useLoad } from '../hooks.ts';
import { useLive } from '../live.ts';
import { navigate } from '../router.ts';

const PAGE = 200;

/** index.html asks for the first page of the default view while the code loads; taken once, when the URL is the same. */
function takePrefetched(path: string): Promise<Page<Series> | null> {
  const w = window as unknown as { __tesseraPrefetch?: { url: string; body: Promise<Page<Series> | null> } };
  const p = w.__tesseraPrefetch;
  if (!p || p.url !== path) return Promise.resolve(null);
  w.__tesseraPrefetch = undefined;
  return p.body;
}

interface Filters {
  q: string;
  dataset: string;
  modality: string[];
  body_part: string[];
  manufacturer: string[];
  study_date_from: string;
  study_date_to: string;
  tags: string[];
  sort: string;
}
const EMPTY: Filters = { q: '', dataset: '', modality: [], body_part: [], manufacturer: [], study_date_from: '', study_date_to: '', tags: [], sort: 'created_at:desc' };

function toQuery(f: Filters, project: string): Query {
  return {
    project,
    q: f.q.trim(),
    dataset: f.dataset,
    modality: f.modality.join(','),
    body_part: f.body_part.join(','),
    manufacturer: f.manufacturer.join(','),
    study_date_from: f.study_date_from,
    study_date_to: f.study_date_to,
    tag: f.tags,
  };
}

/** The filters as a JSON body (`query` of POST /api/datasets). */
function toBody(f: Filters): Record<string, unknown> {
  const tags: Record<string, string> = {};
  for (const t of f.tags) {
    const i = t.indexOf('=');
    tags[t.slice(0, i)] = t.slice(i + 1);
  }
  const body: Record<string, unknown> = {
    dataset: f.dataset || undefined,
    modality: f.modality.length ? f.modality : undefined,
    body_part: f.body_part.length ? f.body_part : undefined,
    manufacturer: f.manufacturer.length ? f.manufacturer : undefined,
    study_date_from: f.study_date_from || undefined,
    study_date_to: f.study_date_to || undefined,
    q: f.q.trim() || undefined,
    tags: f.tags.length ? tags : undefined,
  };
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
}

/** The series store as a gallery: facets and search on the left, a virtualised grid of thumbnails. */
export default function Datasets() {
  const { project, selection, setSelection, report, notify } = useApp();
  const [filters, setFilters] = useState<Filters>(() => {
    const ds = new URLSearchParams(location.search).get('dataset');
    return ds ? { ...EMPTY, dataset: ds } : EMPTY;
  });
  const [text, setText] = useState(filters.q);
  const [tagInput, setTagInput] = useState('');
  const query = useMemo(() => toQuery(filters, project), [filters, project]);
  const queryKey = qs(query) + filters.sort;

  // ---------------------------------------------------------------- pages of series, loaded lazily
  const [total, setTotal] = useState<number | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const pages = useRef(new Map<number, Series[]>());
  const requested = useRef(new Map<number, number>());
  const generation = useRef(0);
  const [, setTick] = useState(0);
  const range = useRef<[number, number]>([0, 0]);
  const brokenThumbs = useRef(new Set<string>());

  const loadPage = useCallback(
    (page: number, gen: number) => {
      requested.current.set(page, gen);
      const [sort, order] = filters.sort.split(':');
      const path = `/api/series${qs({ ...query, sort, order, limit: PAGE, offset: page * PAGE })}`;
      takePrefetched(path).then(
        (hit) => hit ?? get<Page<Series>>(path),
      ).then(
        (r) => {
          if (gen !== generation.current) return;
          pages.current.set(page, r.items);
          setTotal(r.total);
          setError(undefined);
          setTick((t) => t + 1);
        },
        (err: unknown) => {
          if (gen !== generation.current) return;
          requested.current.delete(page);
          setError(err instanceof Error ? err.message : String(err));
        },
      );
    },
    [query, filters.sort],
  );

  const ensureRange = useCallback(
    (first: number, last: number, gen = generation.current) => {
      range.current = [first, last];
      for (let p = Math.floor(first / PAGE); p <= Math.floor(last / PAGE); p++) if (requested.current.get(p) !== gen) loadPage(p, gen);
    },
    [loadPage],
  );

  // A new query: start over (the old items stay until the first page of the new one comes).
  useEffect(() => {
    const gen = ++generation.current;
    pages.current = new Map();
    requested.current = new Map();
    setTotal(undefined);
    loadPage(0, gen);
  }, [queryKey, loadPage]);

  // Something changed in the store: fetch the pages in view again, keep showing the old ones meanwhile.
  const refresh = useCallback(() => {
    const gen = ++generation.current;
    const keep = new Set<number>();
    const [first, last] = range.current;
    for (let p = Math.floor(first / PAGE); p <= Math.floor(last / PAGE); p++) keep.add(p);
    for (const p of [...pages.current.keys()]) if (!keep.has(p)) pages.current.delete(p);
    requested.current = new Map();
    if (keep.size === 0) keep.add(0);
    for (const p of keep) loadPage(p, gen);
  }, [loadPage]);
  useLive(['series', 'datasets'], refresh);

  const itemAt = (i: number): Series | undefined => pages.current.get(Math.floor(i / PAGE))?.[i % PAGE];

  const facets = useLoad((signal) => get<Facets>('/api/series/facets', query, { signal }), [queryKey], ['series']);
  const datasets = useLoad((signal) => get<Page<Dataset>>('/api/datasets', { project, limit: 1000, sort: 'name', order: 'asc' }, { signal }), [project], ['datasets', 'series']);

  // ---------------------------------------------------------------- selection and keyboard
  const grid = useRef<GridHandle>(null);
  const [focus, setFocus] = useState(0);
  const anchor = useRef<number | undefined>(undefined);

  const selectRange = (from: number, to: number, base: Set<string>) => {
    const next = new Set(base);
    for (let i = Math.min(from, to); i <= Math.max(from, to); i++) {
      const s = itemAt(i);
      if (s) next.add(s.series_instance_uid);
    }
    return next;
  };

  const onItemClick = (i: number, e: MouseEvent) => {
    const s = itemAt(i);
    if (!s) return;
    setFocus(i);
    const uid = s.series_instance_uid;
    if (e.shiftKey && anchor.current !== undefined) {
      setSelection(selectRange(anchor.current, i, e.ctrlKey || e.metaKey ? selection : new Set()));
      return;
    }
    if (e.ctrlKey || e.metaKey) {
      const next = new Set(selection);
      if (next.has(uid)) next.delete(uid);
      else next.add(uid);
      setSelection(next);
    } else {
      setSelection(selection.size === 1 && selection.has(uid) ? new Set() : new Set([uid]));
    }
    anchor.current = i;
  };

  const count = total ?? 0;
  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    const cols = grid.current?.columns() ?? 1;
    const moves: Record<string, number> = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols, PageUp: -cols * 4, PageDown: cols * 4 };
    let next: number | undefined;
    if (e.key in moves) next = focus + moves[e.key]!;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = count - 1;
    if (next !== undefined) {
      e.preventDefault();
      next = Math.max(0, Math.min(count - 1, next));
      if (e.shiftKey) {
        anchor.current ??= focus;
        setSelection(selectRange(anchor.current, next, new Set()));
      }
      setFocus(next);
      grid.current?.reveal(next);
      return;
    }
    const s = itemAt(focus);
    if (e.key === ' ' && s) {
      e.preventDefault();
      const n = new Set(selection);
      if (n.has(s.series_instance_uid)) n.delete(s.series_instance_uid);
      else n.add(s.series_instance_uid);
      setSelection(n);
      anchor.current = focus;
    } else if (e.key === 'Enter' && s) {
      navigate(`/viewer/${s.study_instance_uid}/${s.series_instance_uid}`);
    } else if (e.key === 'Escape') {
      setSelection(new Set());
    } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'a') {
      e.preventDefault();
      const all = new Set<string>();
      for (const page of pages.current.values()) for (const x of page) all.add(x.series_instance_uid);
      setSelection(all);
    }
  };

  // ---------------------------------------------------------------- actions
  const [dialog, setDialog] = useState<'create' | 'add' | 'delete' | undefined>(undefined);
  const selected = [...selection];
  const action = useAction();
  const close = () => {
    setDialog(undefined);
    action.setError(undefined);
  };

  const setFilter = <K extends keyof Filters>(k: K, v: Filters[K]) => setFilters((f) => ({ ...f, [k]: v }));
  const toggleFacet = (k: 'modality' | 'body_part' | 'manufacturer', v: string) =>
    setFilters((f) => ({ ...f, [k]: f[k].includes(v) ? f[k].filter((x) => x !== v) : [...f[k], v] }));

  useEffect(() => {
    const t = setTimeout(() => setFilters((f) => (f.q === text ? f : { ...f, q: text })), 250);
    return () => clearTimeout(t);
  }, [text]);

  const addTag = () => {
    const t = tagInput.trim();
    if (!t) return;
    if (!/^[A-Za-z0-9]+=.+/.test(t)) {
      report(new Error(`a tag filter is Keyword=value, e.g. SliceThickness=1.25 or PatientAge=*Y (not "${t}")`));
      return;
    }
    setFilter('tags', [...filters.tags, t]);
    setTagInput('');
  };

  const focused = itemAt(focus);
  const dsList = datasets.data?.items ?? [];

  return (
    <div className="datasets">
      <aside className="sidebar" aria-label="Filters">
        <h3>Dataset</h3>
        <select aria-label="Dataset" value={filters.dataset} onChange={(e) => setFilter('dataset', e.target.value)} style={{ width: '100%' }}>
          <option value="">All series</option>
          {dsList.map((d) => (
            <option key={d.name} value={d.name}>
              {d.name} ({d.series_count ?? 0})
            </option>
          ))}
        </select>
        <ErrorBox error={datasets.error} />
        {filters.dataset && (
          <div className="row small" style={{ marginTop: 6 }}>
            <a href={`/api/datasets/${encodeURIComponent(filters.dataset)}/download${qs({ project })}`}>Download .zip</a>
            <button
              className="danger"
              onClick={async () => {
                if (!confirm(`Delete the dataset "${filters.dataset}"? Its series stay in the store.`)) return;
                await del(`/api/datasets/${encodeURIComponent(filters.dataset)}`, undefined, { project }).then(() => {
                  notify(`dataset ${filters.dataset} deleted`);
                  setFilter('dataset', '');
                  datasets.reload();
                }, report);
              }}
            >
              Delete dataset
            </button>
          </div>
        )}
        {(['modality', 'body_part', 'manufacturer'] as const).map((k) => (
          <div key={k} role="group" aria-label={k.replace('_', ' ')}>
            <h3>{k === 'body_part' ? 'Body part' : k[0]!.toUpperCase() + k.slice(1)}</h3>
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
        <button onClick={() => (setFilters(EMPTY), setText(''))} style={{ marginTop: 8 }}>
          Clear filters
        </button>
      </aside>
      <section className="gallery-wrap" aria-label="Series">
        <div className="toolbar">
          <input className="search" type="search" aria-label="Search series" placeholder="Search: patient, description, UID, modality…" value={text} onChange={(e) => setText(e.target.value)} />
          <select aria-label="Sort" value={filters.sort} onChange={(e) => setFilter('sort', e.target.value)}>
            <option value="created_at:desc">Newest first</option>
            <option value="created_at:asc">Oldest first</option>
            <option value="study_date:desc">Study date ↓</option>
            <option value="study_date:asc">Study date ↑</option>
            <option value="patient_id:asc">Patient</option>
            <option value="modality:asc">Modality</option>
          </select>
          <div className="chips">
            {filters.tags.map((t) => (
              <span key={t} className="chip">
                {t}
                <button className="icon" aria-label={`Remove ${t}`} onClick={() => setFilter('tags', filters.tags.filter((x) => x !== t))}>
                  ×
                </button>
              </span>
            ))}
          </div>
          <span className="spacer" />
          <span className="muted">{selection.size > 0 ? `${selection.size.toLocaleString()} selected` : ''}</span>
          <button disabled={!total} onClick={() => setDialog('create')}>
            New dataset…
          </button>
          <button disabled={selection.size === 0 || dsList.length === 0} onClick={() => setDialog('add')}>
            Add to dataset…
          </button>
          {filters.dataset && (
            <button
              disabled={selection.size === 0}
              onClick={() =>
                action.run(async () => {
                  await del(`/api/datasets/${encodeURIComponent(filters.dataset)}/series`, { series: selected }, { project });
                  notify(`${selected.length} series removed from ${filters.dataset}`);
                  setSelection(new Set());
                  refresh();
                  datasets.reload();
                }).then(() => undefined)
              }
            >
              Remove from dataset
            </button>
          )}
          <button className="primary" disabled={selection.size === 0} onClick={() => navigate('/workflows')}>
            Run workflow…
          </button>
          <button className="danger" disabled={selection.size === 0} onClick={() => setDialog('delete')}>
            Delete…
          </button>
        </div>
        {!dialog && <ErrorBox error={action.error} />}
        <ErrorBox error={error} />
        {total === 0 ? (
          <div className="empty">
            {Object.values(query).some((v) => v && (Array.isArray(v) ? v.length : v !== project)) ? (
              'No series match these filters.'
            ) : (
              <>
                No series in project “{project}” yet. <a href="/upload" onClick={(e) => (e.preventDefault(), navigate('/upload'))}>Upload DICOM files</a>, or send them with C-STORE.
              </>
            )}
          </div>
        ) : (
          <VirtualGrid
            ref={grid}
            label="Series gallery: arrows move, Space selects, Shift extends, Enter opens"
            count={count}
            minItemWidth={170}
            itemHeight={214}
            onRange={ensureRange}
            onKeyDown={onKeyDown}
            renderItem={(i, style) => {
              const s = itemAt(i);
              if (!s) return <div key={`p${i}`} className="card skeleton" style={style} aria-hidden="true" />;
              const sel = selection.has(s.series_instance_uid);
              return (
                <div
                  key={s.series_instance_uid}
                  className={`card${sel ? ' selected' : ''}${i === focus ? ' focused' : ''}`}
                  style={style}
                  role="gridcell"
                  aria-selected={sel}
                  data-uid={s.series_instance_uid}
                  onClick={(e) => onItemClick(i, e)}
                  onDoubleClick={() => navigate(`/viewer/${s.study_instance_uid}/${s.series_instance_uid}`)}
                  title={`${s.series_description ?? ''}\n${s.series_instance_uid}`}
                >
                  <div className="thumb">
                    {s.thumbnail && !brokenThumbs.current.has(s.series_instance_uid) ? (
                      <img
                        src={s.thumbnail}
                        alt=""
                        decoding="async"
                        draggable={false}
                        onError={() => {
                          brokenThumbs.current.add(s.series_instance_uid);
                          setTick((t) => t + 1);
                        }}
                      />
                    ) : (
                      <div className="none">{s.thumbnail_error ?? (s.thumbnail ? 'the thumbnail could not be loaded' : s.complete ? 'no thumbnail yet' : 'arriving…')}</div>
                    )}
                    <span className="check" aria-hidden="true">
                      {sel ? '✓' : ''}
                    </span>
                    {s.modality && <span className="mod">{s.modality}</span>}
                    <button
                      className="open"
                      tabIndex={-1}
                      onClick={(e) => {
                        e.stopPropagation();
                        navigate(`/viewer/${s.study_instance_uid}/${s.series_instance_uid}`);
                      }}
                    >
                      Open
                    </button>
                  </div>
                  <div className="meta">
                    <div className="title">{s.series_description || `Series ${s.series_number ?? ''}`}</div>
                    <div className="sub">{[s.patient_name || s.patient_id, s.study_date].filter(Boolean).join(' · ') || '—'}</div>
                    <div className="sub">
                      {s.instances} inst. · {formatBytes(s.size_bytes)}
                      {s.body_part ? ` · ${s.body_part}` : ''}
                    </div>
                  </div>
                </div>
              );
            }}
          />
        )}
        <div className="statusbar">
          <span>{total === undefined ? 'Loading…' : `${total.toLocaleString()} series`}</span>
          {focused && (
            <span className="mono">
              {focused.patient_id} · {focused.series_instance_uid}
            </span>
          )}
          <span className="spacer" />
          {selection.size === 1 && focused && selection.has(focused.series_instance_uid) && (
            <a href={`/api/series/${focused.series_instance_uid}/download${qs({ project })}`}>Download series</a>
          )}
          {selection.size > 0 && (
            <button className="small" onClick={() => setSelection(new Set())}>
              Clear selection
            </button>
          )}
        </div>
      </section>

      {dialog === 'create' && (
        <CreateDataset
          count={selected.length}
          matching={total ?? 0}
          busy={action.busy}
          error={action.error}
          onClose={close}
          onSubmit={(name, description, all) =>
            action.run(async () => {
              const created = await post<Dataset>('/api/datasets', { name, description: description || undefined, ...(all ? { query: toBody(filters) } : { series: selected }) }, { project });
              notify(`dataset ${name} created with ${created.series_count ?? (all ? total : selected.length)} series`);
              close();
              datasets.reload();
            })
          }
        />
      )}
      {dialog === 'add' && (
        <AddToDataset
          datasets={dsList}
          count={selected.length}
          busy={action.busy}
          error={action.error}
          onClose={close}
          onSubmit={(name) =>
            action.run(async () => {
              await post(`/api/datasets/${encodeURIComponent(name)}/series`, { series: selected }, { project });
              notify(`${selected.length} series added to ${name}`);
              close();
              datasets.reload();
            })
          }
        />
      )}
      {dialog === 'delete' && (
        <Dialog
          title={`Delete ${selected.length} series?`}
          onClose={close}
          footer={
            <>
              <button onClick={close}>Cancel</button>
              <button
                className="danger solid"
                disabled={action.busy}
                onClick={() =>
                  action.run(async () => {
                    const r = await post<{ deleted: number; results: { series: string; error?: string }[] }>('/api/series/delete', { series: selected, project });
                    const failed = r.results.filter((x) => x.error);
                    if (failed.length) report(new Error(`${failed.length} series were not deleted: ${failed.map((x) => x.error).join('; ')}`));
                    notify(`${r.deleted} series deleted`);
                    setSelection(new Set());
                    close();
                    refresh();
                  })
                }
              >
                {action.busy ? 'Deleting…' : 'Delete'}
              </button>
            </>
          }
        >
          <p>
            The files of {selected.length === 1 ? 'this series' : `these ${selected.length} series`}, their index entries and their dataset memberships are removed from project “{project}”. This cannot be undone.
          </p>
          <ErrorBox error={action.error} />
        </Dialog>
      )}
    </div>
  );
}

function CreateDataset(props: { count: number; matching: number; busy: boolean; error?: string; onClose: () => void; onSubmit: (name: string, description: string, all: boolean) => void }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [all, setAll] = useState(props.count === 0);
  return (
    <FormDialog
      title="New dataset"
      id="create-dataset"
      onClose={props.onClose}
      onSubmit={() => props.onSubmit(name.trim(), description.trim(), all)}
      submitLabel={<>Create with {(all ? props.matching : props.count).toLocaleString()} series</>}
      disabled={props.busy || !name.trim()}
      error={props.error}
    >
      <div className="field" role="radiogroup" aria-label="Series">
        <label className="row">
          <input type="radio" name="which" checked={!all} disabled={props.count === 0} onChange={() => setAll(false)} />
          The {props.count.toLocaleString()} selected series
        </label>
        <label className="row">
          <input type="radio" name="which" checked={all} onChange={() => setAll(true)} />
          All {props.matching.toLocaleString()} series matching the filters
        </label>
      </div>
      <label className="field">
        <span className="label">Name</span>
        <input autoFocus required value={name} onChange={(e) => setName(e.target.value)} placeholder="lung-ct" />
      </label>
      <label className="field">
        <span className="label">Description</span>
        <input value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
    </FormDialog>
  );
}

function AddToDataset(props: { datasets: Dataset[]; count: number; busy: boolean; error?: string; onClose: () => void; onSubmit: (name: string) => void }) {
  const [name, setName] = useState(props.datasets[0]?.name ?? '');
  return (
    <Dialog
      title={`Add ${props.count} series to a dataset`}
      onClose={props.onClose}
      footer={
        <>
          <button onClick={props.onClose}>Cancel</button>
          <button className="primary" disabled={props.busy || !name} onClick={() => props.onSubmit(name)}>
            Add
          </button>
        </>
      }
    >
      <label className="field">
        <span className="label">Dataset</span>
        <select value={name} onChange={(e) => setName(e.target.value)}>
          {props.datasets.map((d) => (
            <option key={d.name} value={d.name}>
              {d.name} ({d.series_count ?? 0} series)
            </option>
          ))}
        </select>
      </label>
      <ErrorBox error={props.error} />
    </Dialog>
  );
}
