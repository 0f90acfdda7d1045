import { Type, type Static } from '@sinclair/typebox';
import { DateTime, errors, Nullable, Obj } from './common.ts';
import { defineRoute, PRINCIPAL_INVESTIGATOR } from './route.ts';

export const AllowedSender = Obj(
  {
    address: Type.String({ description: 'An IPv4 or IPv6 address (`10.1.2.3`, `::1`) or a network in CIDR notation (`10.1.0.0/16`, `fd00::/8`), as the server writes it (RFC 5952 for IPv6).' }),
    note: Nullable(Type.String({ description: 'What it is: "CT scanner 2", "PACS".' })),
  },
  { $id: 'AllowedSender', description: 'An address or network that may send C-STORE associations to the project.' },
);
export type AllowedSender = Static<typeof AllowedSender>;

export const DicomSenders = Obj(
  {
    project: Type.String(),
    refuse_unknown: Type.Boolean({ description: "The project's own setting: refuse an address not in `allowed`, even while `allowed` is empty." }),
    refuse_unknown_everywhere: Type.Boolean({ description: 'TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS=1 on the server: every project refuses an address it does not list.' }),
    enforced: Type.Boolean({
      description: 'True when an association from an address not in `allowed` is refused (A-ASSOCIATE-RJ): `allowed` is not empty, or `refuse_unknown` or `refuse_unknown_everywhere` is set. False: anyone who reaches the DICOM port may send to this project.',
    }),
    allowed: Type.Array(AllowedSender),
    called_ae_titles: Type.Array(Type.String(), { description: 'The called AE titles that reach this project: `kp-<project>`, and for the default project any other (the server\'s own, TESSERA_DICOM_AE).' }),
    updated_at: Nullable(DateTime('When the policy last changed; null when it never was set.')),
  },
  { $id: 'DicomSenders', description: "Who may send DICOM (C-STORE, C-ECHO) to a project, known by the association's source address: the calling AE title names the dataset." },
);
export type DicomSenders = Static<typeof DicomSenders>;

export const SetDicomSenders = Type.Object(
  {
    refuse_unknown: Type.Boolean({ description: 'Refuse an address not in `allowed`, even while `allowed` is empty (a non-empty list refuses the others anyway).' }),
    allowed: Type.Array(
      Type.Object(
        {
          address: Type.String({ minLength: 1, maxLength: 64, description: 'An IPv4 or IPv6 address or a CIDR network; each is checked, and a bad one is a 400 naming it (`allowed[2].address`).' }),
          note: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
        },
        { additionalProperties: false },
      ),
      { maxItems: 1000 },
    ),
  },
  { additionalProperties: false },
);
export type SetDicomSenders = Static<typeof SetDicomSenders>;

const tags = ['data'];
const inPath = { in: 'path', name: 'name' } as const;
const ProjectParams = Type.Object({ name: Type.String({ description: "The project's name." }) });

/** A project's C-STORE sender allowlist: part of the DICOM domain. */
export const dicomSenderRoutes = {
  get: defineRoute({
    method: 'GET',
    url: '/api/projects/:name/dicom-senders',
    operationId: 'getDicomSenders',
    tags,
    summary: 'Who may send DICOM to the project (C-STORE, C-ECHO), by source address',
    project: inPath,
    access: PRINCIPAL_INVESTIGATOR,
    params: ProjectParams,
    response: { 200: DicomSenders, ...errors(400, 401, 403, 404, 500) },
  }),
  set: defineRoute({
    method: 'PUT',
    url: '/api/projects/:name/dicom-senders',
    operationId: 'setDicomSenders',
    tags,
    summary: "Replace the project's allowed DICOM senders and whether it refuses unknown ones",
    description:
      'Takes effect for the next association; one already open goes on. An association from an address not allowed is refused with A-ASSOCIATE-RJ (permanent, calling AE title not recognized) and logged. 400: an entry is not an address or network, or is listed twice; nothing changed.',
    project: inPath,
    access: PRINCIPAL_INVESTIGATOR,
    params: ProjectParams,
    body: SetDicomSenders,
    response: { 200: DicomSenders, ...errors(400, 401, 403, 404, 413, 415, 500) },
  }),
} as const;
