import type { InstanceUids } from './index-record.ts';

/** Where an instance goes: its project, and the dataset its series joins (created with the first instance stored into it). */
export interface IngestTarget {
  projectId: string;
  datasetName?: string;
}

/** What became of one ingested instance, with its UIDs. */
export interface IngestOutcome extends InstanceUids {
  /** stored: new; duplicate: already held, kept as it was (policy keep); replaced: the new copy replaced the old (policy replace). */
  status: 'stored' | 'duplicate' | 'replaced';
  transferSyntaxUid: string;
  sizeBytes: number;
}

/** Emitted with 'series-complete' once a series had no new instance for the quiet period. */
export interface SeriesEvent {
  projectId: string;
  seriesUid: string;
  studyUid: string;
}

/** Emitted with 'indexed' after each index commit: one entry per instance the commit stored, replaced or found a duplicate of. */
export interface IndexedInstance {
  projectId: string;
  seriesUid: string;
  studyUid: string;
  datasetName: string | undefined;
  status: IngestOutcome['status'];
}
