import { dirname } from 'node:path';
import { sql, type Kysely } from '@tessera/db';
import type { DicomTables } from './dicom-tables.ts';

/** What a series' deletion removed from the index, and where its files are. */
export interface DeletedSeries {
  studyUid: string;
  instances: number;
  /** Every folder (relative to the store's root) that held its files. */
  folders: string[];
}

/**
 * Deletes a series' index rows and dataset memberships in one transaction, and its
 * study's row with its last series (else the study's counts and modalities follow).
 * Undefined when the project holds no such series. The files are the caller's.
 */
export async function deleteSeriesRows(db: Kysely<DicomTables>, projectId: string, seriesUid: string): Promise<DeletedSeries | undefined> {
  return db.transaction().execute(async (trx) => {
    const series = await trx.selectFrom('dicom_series').select(['study_uid', 'num_instances']).where('project_id', '=', projectId).where('series_uid', '=', seriesUid).executeTakeFirst();
    if (!series) return undefined;
    // Every folder its files are in (a series' instances all name its study, but be sure).
    const dirs = await trx.selectFrom('dicom_instances').select('path').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
    const folders = [...new Set(dirs.map((d) => dirname(d.path)))];
    await trx.deleteFrom('dicom_instances').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
    await trx.deleteFrom('dataset_series').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
    await trx.deleteFrom('dicom_series').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
    await trx.deleteFrom('dicom_series_tags').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
    const rest = await trx
      .selectFrom('dicom_series')
      .select(sql<number>`count(*)`.as('n'))
      .where('project_id', '=', projectId)
      .where('study_uid', '=', series.study_uid)
      .executeTakeFirstOrThrow();
    if (Number(rest.n) === 0) {
      await trx.deleteFrom('dicom_studies').where('project_id', '=', projectId).where('study_uid', '=', series.study_uid).execute();
    } else {
      const mods = await trx.selectFrom('dicom_series').select('modality').distinct().where('project_id', '=', projectId).where('study_uid', '=', series.study_uid).where('modality', 'is not', null).execute();
      await trx
        .updateTable('dicom_studies')
        .set({ num_series: Number(rest.n), modalities: mods.map((m) => m.modality).sort().join('\\'), updated_at: Date.now() })
        .where('project_id', '=', projectId)
        .where('study_uid', '=', series.study_uid)
        .execute();
    }
    return { studyUid: series.study_uid, instances: Number(series.num_instances), folders };
  });
}
