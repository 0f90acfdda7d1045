import type { SeriesFilter, SeriesFilterBody } from '@tessera/api';
import { DICOM_UID_RULE, isDicomUid } from '@tessera/model';
import { Option, type Command } from 'commander';
import { CliError, type Query } from './api-client.ts';

/** The filters of the metadata index as the CLI's options hold them (`tessera series`, `datasets create/add/remove`). */
export interface SeriesFilterOptions {
  query?: string;
  modality?: string[];
  bodyPart?: string[];
  manufacturer?: string[];
  from?: string;
  to?: string;
  study?: string;
  patientId?: string;
  tag?: string[];
  /** Only series of this dataset (`--dataset` of `series`, `--in-dataset` of `datasets`). */
  dataset?: string;
  inDataset?: string;
}

/** Collects a repeatable option whose values may also be comma-separated: `--modality CT,MR --modality PT`. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

/** Collects a repeatable option as given. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Checks that each value is a DICOM UID (the model's rule): a usage error otherwise. */
export function checkUids(uids: string[], what: string): string[] {
  for (const uid of uids) {
    if (!isDicomUid(uid)) {
      throw new CliError(`${what} "${uid}" is not a DICOM UID: UIDs are ${DICOM_UID_RULE} (e.g. 1.2.840.113619.2.55.3.1234)`, { exitCode: 2 });
    }
  }
  return uids;
}

/**
 * Adds the filter options to a command. `datasetFlag` names the dataset filter: `--dataset`
 * for `tessera series`, `--in-dataset` where the command's argument already is a dataset.
 */
export function addSeriesFilters(cmd: Command, datasetFlag: '--dataset' | '--in-dataset'): Command {
  return cmd
    .option('-q, --query <text>', 'free text: every word must occur in patient name or id, descriptions, modality, body part, manufacturer or UIDs')
    .option('--modality <list>', 'modalities, comma-separated or repeated (CT,MR)', collectList)
    .option('--body-part <list>', 'BodyPartExamined values, comma-separated or repeated', collectList)
    .option('--manufacturer <list>', 'manufacturers, comma-separated or repeated', collectList)
    .option('--from <date>', 'study date from (YYYY-MM-DD or YYYYMMDD, inclusive)')
    .option('--to <date>', 'study date to (YYYY-MM-DD or YYYYMMDD, inclusive)')
    .option('--study <uid>', 'only series of this StudyInstanceUID')
    .option('--patient-id <id>', 'only series of this PatientID')
    .option('--tag <Keyword=value>', 'an attribute matches (repeatable): exact, * and ? wildcards, >=n, <=n, date ranges 20200101-20201231', collect)
    .addOption(new Option(`${datasetFlag} <name>`, 'only series of this dataset'));
}

/** True when at least one filter is given. */
export function hasFilters(o: SeriesFilterOptions): boolean {
  return Boolean(
    o.query || o.modality?.length || o.bodyPart?.length || o.manufacturer?.length || o.from || o.to || o.study || o.patientId || o.tag?.length || o.dataset || o.inDataset,
  );
}

/** The filters as query parameters of GET /api/series and /api/series/facets. Usage errors are caught here. */
export function filterQuery(o: SeriesFilterOptions): Query {
  check(o);
  const query: Omit<SeriesFilter, 'project'> = {
    q: o.query,
    modality: o.modality?.length ? o.modality.join(',') : undefined,
    body_part: o.bodyPart?.length ? o.bodyPart.join(',') : undefined,
    manufacturer: o.manufacturer?.length ? o.manufacturer.join(',') : undefined,
    study_date_from: o.from,
    study_date_to: o.to,
    study: o.study,
    patient_id: o.patientId,
    tag: o.tag?.length ? o.tag : undefined,
    dataset: o.dataset ?? o.inDataset,
  };
  return query;
}

/** The filters as the `query` object of the datasets API's JSON bodies, or undefined when none is given. */
export function filterBody(o: SeriesFilterOptions): SeriesFilterBody | undefined {
  if (!hasFilters(o)) return undefined;
  check(o);
  const body: SeriesFilterBody = {};
  if (o.query) body.q = o.query;
  if (o.modality?.length) body.modality = o.modality;
  if (o.bodyPart?.length) body.body_part = o.bodyPart;
  if (o.manufacturer?.length) body.manufacturer = o.manufacturer;
  if (o.from) body.study_date_from = o.from;
  if (o.to) body.study_date_to = o.to;
  if (o.study) body.study = o.study;
  if (o.patientId) body.patient_id = o.patientId;
  if (o.tag?.length) body.tags = Object.fromEntries(o.tag.map(splitTag));
  if (o.dataset ?? o.inDataset) body.dataset = o.dataset ?? o.inDataset;
  return body;
}

const DATE = /^(\d{4}-\d{2}-\d{2}|\d{8})$/;

function check(o: SeriesFilterOptions): void {
  for (const [flag, value] of [['--from', o.from], ['--to', o.to]] as const) {
    if (value !== undefined && !DATE.test(value)) throw new CliError(`${flag} "${value}" is not a date: write YYYY-MM-DD or YYYYMMDD, e.g. 2024-03-31`, { exitCode: 2 });
  }
  if (o.study) checkUids([o.study], '--study');
  o.tag?.forEach(splitTag);
}

function splitTag(t: string): [string, string] {
  const i = t.indexOf('=');
  if (i <= 0) throw new CliError(`--tag "${t}" must look like Keyword=value, e.g. --tag SliceThickness=1.25 or --tag "SeriesDescription=*T1*"`, { exitCode: 2 });
  return [t.slice(0, i), t.slice(i + 1)];
}
