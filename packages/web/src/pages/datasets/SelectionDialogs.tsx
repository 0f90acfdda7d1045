import { useState } from 'react';
import type { Dataset } from '../../api.ts';
import { Dialog, ErrorBox, FormDialog } from '../../components/Dialog.tsx';
import type { SelectionActions } from './use-selection-actions.ts';

/** The dialog the toolbar opened (New dataset…, Add to dataset…, Delete…), if any. */
export function SelectionDialogs({ actions, datasets, matching, project }: { actions: SelectionActions; datasets: Dataset[]; matching: number; project: string }) {
  const { dialog, selected, busy, error, close } = actions;
  if (dialog === 'create') {
    return <CreateDataset count={selected.length} matching={matching} busy={busy} error={error} onClose={close} onSubmit={(name, description, all) => void actions.create(name, description, all)} />;
  }
  if (dialog === 'add') {
    return <AddToDataset datasets={datasets} count={selected.length} busy={busy} error={error} onClose={close} onSubmit={(name) => void actions.addTo(name)} />;
  }
  if (dialog === 'delete') {
    return <DeleteSeries count={selected.length} project={project} busy={busy} error={error} onClose={close} onDelete={() => void actions.deleteSelected()} />;
  }
  return null;
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

function DeleteSeries(props: { count: number; project: string; busy: boolean; error?: string; onClose: () => void; onDelete: () => void }) {
  const { count } = props;
  return (
    <Dialog
      title={`Delete ${count} series?`}
      onClose={props.onClose}
      footer={
        <>
          <button onClick={props.onClose}>Cancel</button>
          <button className="danger solid" disabled={props.busy} onClick={props.onDelete}>
            {props.busy ? 'Deleting…' : 'Delete'}
          </button>
        </>
      }
    >
      <p>
        The files of {count === 1 ? 'this series' : `these ${count} series`}, their index entries and their dataset memberships are removed from project “{props.project}”. This cannot be undone.
      </p>
      <ErrorBox error={props.error} />
    </Dialog>
  );
}
