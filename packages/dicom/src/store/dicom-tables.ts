import { sql, type Kysely, type NamedMigration } from '@tessera/db';

/**
 * One row per study per project: what QIDO-RS answers at study level. Its number of
 * instances is the sum over its series (not kept here: one write less per instance).
 */
export interface StudiesTable {
  project_id: string;
  study_uid: string;
  patient_id: string | null;
  patient_name: string | null;
  patient_birth_date: string | null;
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  study_id: string | null;
  study_description: string | null;
  referring_physician: string | null;
  /** Modalities of the study's series, backslash-separated. */
  modalities: string;
  num_series: number;
  /** Study-level attributes in DICOM JSON (patient and study modules of the first instance). */
  attrs: string;
  created_at: number;
  updated_at: number;
}

/** One row per series per project: the metadata index of the platform and QIDO's series level. */
export interface SeriesTable {
  project_id: string;
  series_uid: string;
  study_uid: string;
  modality: string | null;
  series_number: number | null;
  series_description: string | null;
  body_part: string | null;
  manufacturer: string | null;
  series_date: string | null;
  patient_id: string | null;
  patient_name: string | null;
  study_date: string | null;
  study_description: string | null;
  num_instances: number;
  size_bytes: number;
  /** Series-level attributes in DICOM JSON (for QIDO). */
  attrs: string;
  /** Lower-cased text of the searchable attributes, for free-text search. */
  search_text: string;
  created_at: number;
  /** When the last instance arrived. */
  updated_at: number;
  /** When the series was declared complete (quiet period passed); null while instances may still arrive. */
  completed_at: number | null;
  /** Thumbnail file (relative to the store root), or null until made. */
  thumbnail: string | null;
  thumbnail_error: string | null;
}

/**
 * Every top-level attribute of a series' first instance, in DICOM JSON (bulk data left
 * out). A table of its own: these values are kilobytes, and scans of dicom_series
 * (search, facets, sorting) must not wade through them.
 */
export interface SeriesTagsTable {
  project_id: string;
  series_uid: string;
  tags: string;
}

export interface InstancesTable {
  project_id: string;
  sop_uid: string;
  series_uid: string;
  study_uid: string;
  sop_class_uid: string;
  instance_number: number | null;
  transfer_syntax: string;
  size_bytes: number;
  /** File path relative to the store root. */
  path: string;
  /** Instance-level attributes in DICOM JSON (for QIDO). */
  attrs: string;
  received_at: number;
}

export interface DatasetsTable {
  id: string;
  project_id: string;
  name: string;
  description: string | null;
  created_at: number;
  updated_at: number;
}

export interface DatasetSeriesTable {
  dataset_id: string;
  project_id: string;
  series_uid: string;
  added_at: number;
}

/**
 * Who may send a project C-STORE associations (issue 14): one row per project that has a
 * policy. `refuse_unknown` is 0 or 1 (an integer: SQLite has no boolean, and PostgreSQL
 * takes the same).
 */
export interface SenderPoliciesTable {
  project_id: string;
  refuse_unknown: number;
  updated_at: number;
}

/** The addresses and networks a project allows, in the order given. */
export interface AllowedSendersTable {
  project_id: string;
  position: number;
  /** Canonical: `10.0.0.0/8`, `10.1.2.3`, `fd00::/8`, `::1`. */
  address: string;
  note: string | null;
}

export interface DicomTables {
  dicom_studies: StudiesTable;
  dicom_series: SeriesTable;
  dicom_series_tags: SeriesTagsTable;
  dicom_instances: InstancesTable;
  datasets: DatasetsTable;
  dataset_series: DatasetSeriesTable;
  dicom_sender_policies: SenderPoliciesTable;
  dicom_allowed_senders: AllowedSendersTable;
}

/** Migrations of the DICOM domain (studies, series, instances, datasets, allowed C-STORE senders). */
export const dicomMigrations: NamedMigration[] = [
  {
    name: '2026-12-02-01-dicom',
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('dicom_studies')
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('study_uid', 'text', (c) => c.notNull())
        .addColumn('patient_id', 'text')
        .addColumn('patient_name', 'text')
        .addColumn('patient_birth_date', 'text')
        .addColumn('study_date', 'text')
        .addColumn('study_time', 'text')
        .addColumn('accession_number', 'text')
        .addColumn('study_id', 'text')
        .addColumn('study_description', 'text')
        .addColumn('referring_physician', 'text')
        .addColumn('modalities', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('num_series', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('attrs', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('dicom_studies_pk', ['project_id', 'study_uid'])
        .execute();
      for (const col of ['patient_id', 'patient_name', 'accession_number', 'created_at']) {
        await db.schema.createIndex(`dicom_studies_${col}`).on('dicom_studies').columns(['project_id', col]).execute();
      }
      // QIDO's study order: a date range and the first page come straight from this index.
      await db.schema.createIndex('dicom_studies_date').on('dicom_studies').columns(['project_id', 'study_date', 'study_uid']).execute();
      await db.schema
        .createTable('dicom_series')
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('series_uid', 'text', (c) => c.notNull())
        .addColumn('study_uid', 'text', (c) => c.notNull())
        .addColumn('modality', 'text')
        .addColumn('series_number', 'integer')
        .addColumn('series_description', 'text')
        .addColumn('body_part', 'text')
        .addColumn('manufacturer', 'text')
        .addColumn('series_date', 'text')
        .addColumn('patient_id', 'text')
        .addColumn('patient_name', 'text')
        .addColumn('study_date', 'text')
        .addColumn('study_description', 'text')
        .addColumn('num_instances', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('size_bytes', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('attrs', 'text', (c) => c.notNull())
        .addColumn('search_text', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('completed_at', 'bigint')
        .addColumn('thumbnail', 'text')
        .addColumn('thumbnail_error', 'text')
        .addPrimaryKeyConstraint('dicom_series_pk', ['project_id', 'series_uid'])
        .execute();
      await db.schema.createIndex('dicom_series_study').on('dicom_series').columns(['project_id', 'study_uid']).execute();
      // Columns filtered or sorted on; not those written with every instance (updated_at, num_instances).
      for (const col of ['modality', 'body_part', 'manufacturer', 'created_at', 'study_date', 'patient_id', 'patient_name', 'series_date', 'series_description']) {
        await db.schema.createIndex(`dicom_series_${col}`).on('dicom_series').columns(['project_id', col]).execute();
      }
      // Free text: a trigram index over search_text (substring search at any position),
      // kept in step by triggers. PostgreSQL would use pg_trgm for the same.
      await sql`create virtual table dicom_series_fts using fts5(search_text, tokenize = 'trigram', content = 'dicom_series', content_rowid = 'rowid')`.execute(db);
      await sql`create trigger dicom_series_fts_insert after insert on dicom_series begin
        insert into dicom_series_fts (rowid, search_text) values (new.rowid, new.search_text); end`.execute(db);
      await sql`create trigger dicom_series_fts_delete after delete on dicom_series begin
        insert into dicom_series_fts (dicom_series_fts, rowid, search_text) values ('delete', old.rowid, old.search_text); end`.execute(db);
      await sql`create trigger dicom_series_fts_update after update of search_text on dicom_series begin
        insert into dicom_series_fts (dicom_series_fts, rowid, search_text) values ('delete', old.rowid, old.search_text);
        insert into dicom_series_fts (rowid, search_text) values (new.rowid, new.search_text); end`.execute(db);
      await db.schema
        .createTable('dicom_series_tags')
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('series_uid', 'text', (c) => c.notNull())
        .addColumn('tags', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('dicom_series_tags_pk', ['project_id', 'series_uid'])
        .execute();
      await db.schema
        .createTable('dicom_instances')
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('sop_uid', 'text', (c) => c.notNull())
        .addColumn('series_uid', 'text', (c) => c.notNull())
        .addColumn('study_uid', 'text', (c) => c.notNull())
        .addColumn('sop_class_uid', 'text', (c) => c.notNull())
        .addColumn('instance_number', 'integer')
        .addColumn('transfer_syntax', 'text', (c) => c.notNull())
        .addColumn('size_bytes', 'integer', (c) => c.notNull())
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('attrs', 'text', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('dicom_instances_pk', ['project_id', 'sop_uid'])
        // Rows live in the primary key's b-tree: one b-tree less to write per instance.
        .modifyEnd(sql`without rowid`)
        .execute();
      await db.schema.createIndex('dicom_instances_series').on('dicom_instances').columns(['project_id', 'series_uid', 'instance_number']).execute();
      await db.schema
        .createTable('datasets')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('datasets_project_name', ['project_id', 'name'])
        .execute();
      await db.schema
        .createTable('dataset_series')
        .addColumn('dataset_id', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('series_uid', 'text', (c) => c.notNull())
        .addColumn('added_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('dataset_series_pk', ['dataset_id', 'series_uid'])
        .execute();
      await db.schema.createIndex('dataset_series_series').on('dataset_series').columns(['project_id', 'series_uid']).execute();
    },
  },
  {
    name: '2026-12-07-01-dicom-senders',
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('dicom_sender_policies')
        .addColumn('project_id', 'text', (c) => c.primaryKey())
        .addColumn('refuse_unknown', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('dicom_allowed_senders')
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('note', 'text')
        .addPrimaryKeyConstraint('dicom_allowed_senders_pk', ['project_id', 'position'])
        .addUniqueConstraint('dicom_allowed_senders_address', ['project_id', 'address'])
        .execute();
    },
  },
];
