import { qs, type Series } from '../../api.ts';

/** Under the gallery: how many series match, the focused one, and a download when exactly it is selected. */
export function GalleryStatusBar({ total, focused, selection, project, onClearSelection }: { total: number | undefined; focused: Series | undefined; selection: Set<string>; project: string; onClearSelection: () => void }) {
  return (
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
        <button className="small" onClick={onClearSelection}>
          Clear selection
        </button>
      )}
    </div>
  );
}
