import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { DicomService, IndexedInstance } from '@tessera/dicom';
import { EventBus, SERIES_UIDS_MAX, type TesseraEvent } from './event-bus.ts';
import { publishSeriesEvents } from './domain-events.ts';

/** A stand-in for the DICOM service: what publishSeriesEvents listens to. */
function fakeDicom(): DicomService & { store: EventEmitter } {
  const service = new EventEmitter() as unknown as DicomService & { store: EventEmitter };
  (service as unknown as { store: EventEmitter }).store = new EventEmitter();
  return service;
}

const indexed = (projectId: string, seriesUid: string, status: IndexedInstance['status'] = 'stored', datasetName?: string): IndexedInstance => ({ projectId, seriesUid, studyUid: '1.2', datasetName, status });

describe('series events', () => {
  it('coalesce per project and window, cap the UID lists, and tell of the datasets an ingest added to', async () => {
    const bus = new EventBus();
    const got: TesseraEvent[] = [];
    bus.subscribe((d) => got.push(d.event));
    const dicom = fakeDicom();
    const stop = publishSeriesEvents({ bus, dicom, projectName: async (id) => `name-of-${id}`, windowMs: 100, onError: (err) => { throw err; } });

    // Three commits in one window: 150 series in project p1, one in p2.
    dicom.store.emit('indexed', Array.from({ length: 100 }, (_, i) => indexed('p1', `1.${i}`, 'stored', 'ds-a')));
    dicom.store.emit('indexed', [...Array.from({ length: 50 }, (_, i) => indexed('p1', `1.${100 + i}`)), indexed('p1', '1.0', 'duplicate', 'ds-b'), indexed('p2', '2.1', 'replaced')]);
    dicom.emit('series-complete', { projectId: 'p1', seriesUid: '1.7', studyUid: '1.2' });
    expect(got).toEqual([]);
    await new Promise((r) => setTimeout(r, 200));
    const series = got.filter((e) => e.type === 'series');
    expect(series).toHaveLength(2);
    const p1 = series.find((e) => e.project === 'name-of-p1')!;
    expect(p1).toMatchObject({ instances: 150, duplicates: 1, completed: ['1.7'], deleted: [], truncated: true });
    expect((p1 as { stored: string[] }).stored).toHaveLength(SERIES_UIDS_MAX);
    expect(series.find((e) => e.project === 'name-of-p2')).toEqual({ type: 'series', project: 'name-of-p2', state: 'changed', instances: 1, duplicates: 0, stored: ['2.1'], completed: [], deleted: [], truncated: false });
    expect(got.filter((e) => e.type === 'dataset')).toEqual([
      { type: 'dataset', project: 'name-of-p1', name: 'ds-a', state: 'changed' },
      { type: 'dataset', project: 'name-of-p1', name: 'ds-b', state: 'changed' },
    ]);

    // A later change is a new window; stopping flushes what is pending and detaches.
    got.length = 0;
    dicom.emit('series-deleted', { projectId: 'p1', seriesUid: '1.3', studyUid: '1.2' });
    stop();
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual([{ type: 'series', project: 'name-of-p1', state: 'changed', instances: 0, duplicates: 0, stored: [], completed: [], deleted: ['1.3'], truncated: false }]);
    expect(dicom.store.listenerCount('indexed') + dicom.listenerCount('series-complete') + dicom.listenerCount('series-deleted')).toBe(0);
  });
});
