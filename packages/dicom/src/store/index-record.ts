import { DICOM_UID_RULE, isDicomUid, type TesseraError } from '@tessera/model';
import { invalidDicom, PIXEL_DATA, type DicomDataset } from '../parse/dataset-reader.ts';
import { elementStrings, getNumber, getString, toDicomJson } from '../parse/dataset-values.ts';
import { tagLabel } from '../parse/data-dictionary.ts';

export const TAG = {
  SpecificCharacterSet: 0x00080005,
  ImageType: 0x00080008,
  SOPClassUID: 0x00080016,
  SOPInstanceUID: 0x00080018,
  StudyDate: 0x00080020,
  SeriesDate: 0x00080021,
  ContentDate: 0x00080023,
  StudyTime: 0x00080030,
  SeriesTime: 0x00080031,
  ContentTime: 0x00080033,
  AccessionNumber: 0x00080050,
  InstanceAvailability: 0x00080056,
  Modality: 0x00080060,
  ModalitiesInStudy: 0x00080061,
  Manufacturer: 0x00080070,
  InstitutionName: 0x00080080,
  ReferringPhysicianName: 0x00080090,
  RetrieveURL: 0x00081190,
  StationName: 0x00081010,
  StudyDescription: 0x00081030,
  SeriesDescription: 0x0008103e,
  ManufacturerModelName: 0x00081090,
  PatientName: 0x00100010,
  PatientID: 0x00100020,
  IssuerOfPatientID: 0x00100021,
  PatientBirthDate: 0x00100030,
  PatientSex: 0x00100040,
  PatientAge: 0x00101010,
  BodyPartExamined: 0x00180015,
  ProtocolName: 0x00181030,
  StudyInstanceUID: 0x0020000d,
  SeriesInstanceUID: 0x0020000e,
  StudyID: 0x00200010,
  SeriesNumber: 0x00200011,
  AcquisitionNumber: 0x00200012,
  InstanceNumber: 0x00200013,
  ImagePositionPatient: 0x00200032,
  FrameOfReferenceUID: 0x00200052,
  Laterality: 0x00200060,
  SliceLocation: 0x00201041,
  NumberOfStudyRelatedSeries: 0x00201206,
  NumberOfStudyRelatedInstances: 0x00201208,
  NumberOfSeriesRelatedInstances: 0x00201209,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  PerformedProcedureStepStartDate: 0x00400244,
  PerformedProcedureStepStartTime: 0x00400245,
  PixelData: PIXEL_DATA,
} as const;

// SpecificCharacterSet is left out of these: DICOM JSON is UTF-8 whatever the file's character set.
/** Attributes QIDO-RS returns at study level (PS3.18 Table 6.7.1-2, plus the patient module's common ones). */
export const STUDY_TAGS: readonly number[] = [
  TAG.StudyDate, TAG.StudyTime, TAG.AccessionNumber, TAG.ReferringPhysicianName, TAG.StudyDescription,
  TAG.PatientName, TAG.PatientID, TAG.IssuerOfPatientID, TAG.PatientBirthDate, TAG.PatientSex, TAG.PatientAge, TAG.StudyInstanceUID, TAG.StudyID,
];
/** Attributes QIDO-RS returns at series level. */
export const SERIES_TAGS: readonly number[] = [
  TAG.SeriesDate, TAG.SeriesTime, TAG.Modality, TAG.Manufacturer, TAG.InstitutionName, TAG.StationName,
  TAG.SeriesDescription, TAG.ManufacturerModelName, TAG.BodyPartExamined, TAG.ProtocolName, TAG.SeriesInstanceUID, TAG.SeriesNumber,
  TAG.FrameOfReferenceUID, TAG.Laterality, TAG.PerformedProcedureStepStartDate, TAG.PerformedProcedureStepStartTime,
];
/** Attributes QIDO-RS returns at instance level. */
export const INSTANCE_TAGS: readonly number[] = [
  TAG.ImageType, TAG.SOPClassUID, TAG.SOPInstanceUID, TAG.ContentDate, TAG.ContentTime, TAG.AcquisitionNumber,
  TAG.InstanceNumber, TAG.ImagePositionPatient, TAG.SliceLocation, TAG.NumberOfFrames, TAG.Rows, TAG.Columns, TAG.BitsAllocated,
];

/** The four UIDs every stored instance must have, checked. */
export interface InstanceUids {
  sopInstanceUid: string;
  sopClassUid: string;
  seriesInstanceUid: string;
  studyInstanceUid: string;
}

/** Reads and checks the UIDs; throws TESSERA_INVALID_DICOM naming the missing or malformed one. */
export function instanceUids(ds: DicomDataset): InstanceUids {
  const need = (tag: number, name: string): string => {
    const v = getString(ds, tag);
    if (!v) throw invalidDicom(`the instance has no ${name} ${tagLabel(tag)}, which every stored instance needs`);
    if (!isDicomUid(v)) throw notAUid(name, tag, v);
    // A UID identifies one thing: several values (VM > 1) would be stored as the first and the others lost.
    const el = ds.elements.get(tag)!;
    // Written with another VR (US, FD, AT...), it is read as numbers by every reader: QIDO-RS and metadata
    // could not name the instance, so it could be stored but never found.
    if (el.vr !== 'UI') throw invalidDicom(`${name} ${tagLabel(tag)} is encoded with the value representation ${el.vr}, not UI; readers would not see it as a UID`);
    const values = elementStrings(ds, el);
    if (values.length > 1) throw invalidDicom(`${name} ${tagLabel(tag)} has ${values.length} values ("${values.join('\\').slice(0, 80)}"); it must have exactly one`);
    return v;
  };
  return {
    sopInstanceUid: need(TAG.SOPInstanceUID, 'SOP Instance UID'),
    sopClassUid: need(TAG.SOPClassUID, 'SOP Class UID'),
    seriesInstanceUid: need(TAG.SeriesInstanceUID, 'Series Instance UID'),
    studyInstanceUid: need(TAG.StudyInstanceUID, 'Study Instance UID'),
  };
}

// A function of its own: after isDicomUid fails, the value is typed `never` where it is checked.
function notAUid(name: string, tag: number, value: string): TesseraError {
  return invalidDicom(`${name} ${tagLabel(tag)} "${value.slice(0, 80)}" is not a valid UID (${DICOM_UID_RULE})`);
}

const pnText = (ds: DicomDataset, tag: number): string | null => getString(ds, tag)?.split('=')[0] ?? null;
const str = (ds: DicomDataset, tag: number): string | null => getString(ds, tag) ?? null;
const int = (ds: DicomDataset, tag: number): number | null => {
  const n = getNumber(ds, tag);
  return n === undefined || !Number.isFinite(n) ? null : Math.trunc(n);
};

export function studyRecord(ds: DicomDataset) {
  return {
    patient_id: str(ds, TAG.PatientID),
    patient_name: pnText(ds, TAG.PatientName),
    patient_birth_date: str(ds, TAG.PatientBirthDate),
    study_date: str(ds, TAG.StudyDate),
    study_time: str(ds, TAG.StudyTime),
    accession_number: str(ds, TAG.AccessionNumber),
    study_id: str(ds, TAG.StudyID),
    study_description: str(ds, TAG.StudyDescription),
    referring_physician: pnText(ds, TAG.ReferringPhysicianName),
    attrs: JSON.stringify(toDicomJson(ds, { only: STUDY_TAGS })),
  };
}

/** Top-level attributes of a series kept in the index: everything but bulk data and the pixel data. */
export function seriesTags(ds: DicomDataset): string {
  return JSON.stringify(toDicomJson(ds, { skipMeta: true, skip: new Set([PIXEL_DATA]), inlineBinaryMax: 64 }));
}

export function seriesRecord(ds: DicomDataset) {
  const rec = {
    modality: str(ds, TAG.Modality),
    series_number: int(ds, TAG.SeriesNumber),
    series_description: str(ds, TAG.SeriesDescription),
    body_part: str(ds, TAG.BodyPartExamined),
    manufacturer: str(ds, TAG.Manufacturer),
    series_date: str(ds, TAG.SeriesDate),
    patient_id: str(ds, TAG.PatientID),
    patient_name: pnText(ds, TAG.PatientName),
    study_date: str(ds, TAG.StudyDate),
    study_description: str(ds, TAG.StudyDescription),
    attrs: JSON.stringify(toDicomJson(ds, { only: SERIES_TAGS })),
    tags: seriesTags(ds),
  };
  const text = [
    getString(ds, TAG.PatientName), rec.patient_id, rec.study_description, rec.series_description, rec.modality, rec.body_part,
    rec.manufacturer, str(ds, TAG.AccessionNumber), str(ds, TAG.InstitutionName), str(ds, TAG.ProtocolName), str(ds, TAG.ManufacturerModelName),
    str(ds, TAG.StudyInstanceUID), str(ds, TAG.SeriesInstanceUID),
  ];
  return { ...rec, search_text: text.filter(Boolean).join(' ').toLowerCase() };
}

export function instanceRecord(ds: DicomDataset) {
  return {
    instance_number: int(ds, TAG.InstanceNumber),
    attrs: JSON.stringify(toDicomJson(ds, { only: INSTANCE_TAGS })),
  };
}
