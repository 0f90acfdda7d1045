import { useRef, useState, type CSSProperties, type KeyboardEvent, type MouseEvent, type RefObject } from 'react';
import type { Series } from '../../api.ts';
import { formatBytes } from '../../components/StateBadge.tsx';
import { VirtualGrid, type GridHandle } from '../../components/VirtualGrid.tsx';
import { navigate } from '../../router.ts';
import { openSeries } from './use-gallery-selection.ts';

interface Props {
  grid: RefObject<GridHandle | null>;
  /** How many series match; 0 shows the empty state instead of the grid. */
  total: number | undefined;
  project: string;
  /** Whether the filters narrow the project (the empty state says which case it is). */
  filtered: boolean;
  itemAt: (i: number) => Series | undefined;
  selection: Set<string>;
  focus: number;
  onRange: (first: number, last: number) => void;
  onKeyDown: (e: KeyboardEvent<HTMLDivElement>) => void;
  onItemClick: (i: number, e: MouseEvent) => void;
}

/** The series as a windowed grid of thumbnail cards (skeletons while their page loads), or why there are none. */
export function SeriesGallery({ grid, total, project, filtered, itemAt, selection, focus, onRange, onKeyDown, onItemClick }: Props) {
  // Kept here, not in a card: cards leave the DOM when scrolled away and must not try a broken image again.
  const brokenThumbs = useRef(new Set<string>());
  const [, setTick] = useState(0);

  if (total === 0) {
    return (
      <div className="empty">
        {filtered ? (
          'No series match these filters.'
        ) : (
          <>
            No series in project “{project}” yet. <a href="/upload" onClick={(e) => (e.preventDefault(), navigate('/upload'))}>Upload DICOM files</a>, or send them with C-STORE.
          </>
        )}
      </div>
    );
  }
  return (
    <VirtualGrid
      ref={grid}
      label="Series gallery: arrows move, Space selects, Shift extends, Enter opens"
      count={total ?? 0}
      minItemWidth={170}
      itemHeight={214}
      onRange={onRange}
      onKeyDown={onKeyDown}
      renderItem={(i, style) => {
        const s = itemAt(i);
        if (!s) return <div key={`p${i}`} className="card skeleton" style={style} aria-hidden="true" />;
        return (
          <SeriesCard
            key={s.series_instance_uid}
            series={s}
            style={style}
            selected={selection.has(s.series_instance_uid)}
            focused={i === focus}
            thumbBroken={brokenThumbs.current.has(s.series_instance_uid)}
            onThumbError={() => {
              brokenThumbs.current.add(s.series_instance_uid);
              setTick((t) => t + 1);
            }}
            onClick={(e) => onItemClick(i, e)}
          />
        );
      }}
    />
  );
}

interface CardProps {
  series: Series;
  style: CSSProperties;
  selected: boolean;
  focused: boolean;
  thumbBroken: boolean;
  onThumbError: () => void;
  onClick: (e: MouseEvent) => void;
}

function SeriesCard({ series: s, style, selected: sel, focused, thumbBroken, onThumbError, onClick }: CardProps) {
  return (
    <div
      className={`card${sel ? ' selected' : ''}${focused ? ' focused' : ''}`}
      style={style}
      role="gridcell"
      aria-selected={sel}
      data-uid={s.series_instance_uid}
      onClick={onClick}
      onDoubleClick={() => openSeries(s)}
      title={`${s.series_description ?? ''}\n${s.series_instance_uid}`}
    >
      <div className="thumb">
        {s.thumbnail && !thumbBroken ? (
          <img src={s.thumbnail} alt="" decoding="async" draggable={false} onError={onThumbError} />
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
            openSeries(s);
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
}
