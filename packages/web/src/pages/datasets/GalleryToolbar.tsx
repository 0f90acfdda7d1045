import { navigate } from '../../router.ts';
import type { Filters, SetFilter } from './dataset-filters.ts';
import type { SelectionDialog } from './use-selection-actions.ts';

interface Props {
  /** The search box's text; it reaches the filters a moment after typing stops. */
  text: string;
  onText: (text: string) => void;
  filters: Filters;
  setFilter: SetFilter;
  selectionSize: number;
  /** How many series match (New dataset… needs at least one). */
  total: number | undefined;
  /** How many datasets the project has (Add to dataset… needs one). */
  datasetCount: number;
  onOpen: (dialog: SelectionDialog) => void;
  onRemoveFromDataset: () => void;
}

/** Above the gallery: search, sort, the tag filters as chips, and what can be done with the selection. */
export function GalleryToolbar({ text, onText, filters, setFilter, selectionSize, total, datasetCount, onOpen, onRemoveFromDataset }: Props) {
  return (
    <div className="toolbar">
      <input className="search" type="search" aria-label="Search series" placeholder="Search: patient, description, UID, modality…" value={text} onChange={(e) => onText(e.target.value)} />
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
      <span className="muted">{selectionSize > 0 ? `${selectionSize.toLocaleString()} selected` : ''}</span>
      <button disabled={!total} onClick={() => onOpen('create')}>
        New dataset…
      </button>
      <button disabled={selectionSize === 0 || datasetCount === 0} onClick={() => onOpen('add')}>
        Add to dataset…
      </button>
      {filters.dataset && (
        <button disabled={selectionSize === 0} onClick={onRemoveFromDataset}>
          Remove from dataset
        </button>
      )}
      <button className="primary" disabled={selectionSize === 0} onClick={() => navigate('/workflows')}>
        Run workflow…
      </button>
      <button className="danger" disabled={selectionSize === 0} onClick={() => onOpen('delete')}>
        Delete…
      </button>
    </div>
  );
}
