import { useEffect, useRef, useState, type WheelEvent } from 'react';
import { get, openHref, qs, type Answer, type SeriesDetail } from '../api.ts';
import { useApp } from '../context.ts';
import { ErrorBox } from '../components/Dialog.tsx';
import { Link } from '../components/Link.tsx';
import { useLoad } from '../hooks.ts';

/**
 * A series, frame by frame: the built-in stack viewer draws DICOMweb's rendered images
 * (slider, wheel, arrow keys); when the OHIF viewer application runs in the project, a
 * button opens the study in it.
 */
export default function Viewer({ study, series }: { study: string; series: string }) {
  const { project } = useApp();
  const meta = useLoad((signal) => get<SeriesDetail>(`/api/series/${encodeURIComponent(series)}`, { project }, { signal }), [series, project]);
  const instances = useLoad((signal) => get<Answer<'data', 'instances'>>(`/api/series/${encodeURIComponent(series)}/instances`, { project, limit: 10000 }, { signal }), [series, project], ['series']);
  const apps = useLoad((signal) => get<Answer<'applications', 'list'>>('/api/applications', { project }, { signal }), [project], ['applications']);
  const ohif = apps.data?.items.find((a) => a.extension === 'ohif-viewer' && a.state === 'running');
  const list = instances.data?.items ?? [];
  const [index, setIndex] = useState(0);
  // Why the image at `src` cannot be drawn (the server's 4xx message), once the browser failed to load it.
  const [failure, setFailure] = useState<{ src: string; message: string } | undefined>();
  const stage = useRef<HTMLDivElement>(null);

  useEffect(() => setIndex(Math.floor(list.length / 2)), [list.length]);
  const base = `/projects/${encodeURIComponent(project)}/dicom-web/studies/${study}/series/${series}/instances`;
  const src = (i: number) => (list[i] ? `${base}/${list[i]!.sop_instance_uid}/rendered` : '');

  // The neighbours are fetched ahead, so scrolling through the stack does not wait.
  useEffect(() => {
    for (const d of [1, -1, 2, -2]) {
      const s = src(index + d);
      if (s) new Image().src = s;
    }
  });

  /** An <img> that failed: ask the server again for the reason, to show it in place of the image. */
  const explain = (url: string) => {
    void fetch(url, { headers: { accept: 'image/jpeg' } })
      .then(async (res) => {
        const body = (await res.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
        return body?.error?.message ?? `the server answered ${res.status} ${res.statusText}`;
      })
      .catch((err: unknown) => `the server could not be reached (${String(err)})`)
      .then((message) => setFailure({ src: url, message }));
  };
  const shown = src(index);
  const failed = failure && failure.src === shown ? failure : undefined;

  const move = (d: number) => setIndex((i) => Math.max(0, Math.min(list.length - 1, i + d)));
  const onWheel = (e: WheelEvent) => move(e.deltaY > 0 ? 1 : -1);
  const s = meta.data;

  return (
    <div className="viewer">
      <div className="vbar">
        <Link href="/datasets">← Datasets</Link>
        <b>{s ? s.series_description || `Series ${s.series_number ?? ''}` : series}</b>
        <span className="small">{s ? [s.modality, s.patient_name || s.patient_id, s.study_date].filter(Boolean).join(' · ') : ''}</span>
        <span className="spacer" />
        {ohif ? (
          <a className="button primary" href={openHref(`${ohif.url}viewer${qs({ StudyInstanceUIDs: study })}`)} target="_blank" rel="noreferrer">
            Open in OHIF ↗
          </a>
        ) : (
          <span className="small muted" style={{ color: '#9ca3af' }}>
            Launch the ohif-viewer application (<Link href="/applications">Applications</Link>) to read it in OHIF.
          </span>
        )}
        <a className="button" href={`/api/series/${series}/download${qs({ project })}`}>
          Download
        </a>
      </div>
      <ErrorBox error={meta.error ?? instances.error} />
      <div
        ref={stage}
        className="stage"
        tabIndex={0}
        aria-label="Image: arrow keys or the wheel move through the slices"
        onWheel={onWheel}
        onKeyDown={(e) => {
          const d = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 }[e.key];
          if (d !== undefined) {
            e.preventDefault();
            move(d);
          } else if (e.key === 'Home') setIndex(0);
          else if (e.key === 'End') setIndex(list.length - 1);
        }}
      >
        {list.length === 0 ? (
          <span className="muted">{instances.data ? 'No instances.' : 'Loading…'}</span>
        ) : failed ? (
          <p className="muted" role="alert" data-testid="frame-error">
            Instance {index + 1} cannot be drawn: {failed.message}
          </p>
        ) : (
          <img src={shown} alt={`instance ${index + 1} of ${list.length}`} data-testid="frame" onError={() => explain(shown)} />
        )}
      </div>
      <div className="vbar">
        <input type="range" aria-label="Slice" min={1} max={Math.max(1, list.length)} value={index + 1} onChange={(e) => setIndex(Number(e.target.value) - 1)} />
        <span className="mono">
          {list.length ? index + 1 : 0} / {list.length}
        </span>
      </div>
    </div>
  );
}
