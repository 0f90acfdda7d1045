import { Type, type TProperties, type TSchema } from '@sinclair/typebox';
import { errors } from './common.ts';
import { defineRoute, Media, NoContent, SCIENTIST, type ProjectScope, type RouteContract } from './route.ts';

/** The media type of DICOM JSON (PS3.18 F.2): what QIDO-RS, metadata and STOW-RS answer. */
export const DICOM_JSON = 'application/dicom+json';

/** Where DICOMweb is served: the default project's root and every project's. */
export const DICOMWEB_ROOTS = { default: '/dicom-web', project: '/projects/:project/dicom-web' } as const;

/**
 * A query parameter given once or repeated (`includefield=a&includefield=b`): the
 * server validates none of them itself, so that nothing a DICOMweb client sends today
 * is refused at the edge; QIDO-RS checks them and answers 400 naming the one at fault.
 */
const QueryValue = (description: string) => Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description }));

const QidoQuery = Type.Object(
  {
    limit: QueryValue('At most this many matches (a non-negative integer; at most 1000, the default, for studies and series). A `Warning` header says when it cut the results.'),
    offset: QueryValue('Skip this many matches first (a non-negative integer, default 0).'),
    fuzzymatching: QueryValue('Accepted and ignored: person names always match case-insensitively, with `*` and `?` wildcards.'),
    includefield: QueryValue('More attributes to return: DICOM keywords or tags (`PatientAge`, `00101010`), comma-separated or repeated, or `all`.'),
  },
  {
    additionalProperties: true,
    description: 'Every other parameter is an attribute match: a DICOM keyword or tag (`PatientName=Doe*`, `0020000D=1.2.3,1.2.4`, `StudyDate=20240101-20240131`); empty returns the attribute.',
  },
);

const RenderedQuery = Type.Object(
  {
    viewport: Type.Optional(Type.String({ description: '`width,height`: the image fits in the larger of the two (thumbnails default to 128).' })),
    window: Type.Optional(Type.String({ description: "`center,width`: the VOI window of a monochrome image (default: the instance's first window, else the frame's value range)." })),
    quality: Type.Optional(Type.String({ description: 'JPEG quality, an integer from 1 to 100 (default 90).' })),
  },
  { additionalProperties: true },
);

const StowQuery = Type.Object(
  { dataset: Type.Optional(Type.String({ description: 'The dataset to add the instances to (default: a new import dataset).' })) },
  { additionalProperties: true },
);

const uid = (what: string) => Type.String({ description: `The ${what} Instance UID.` });
const STUDY = { study: uid('Study') };
const SERIES = { ...STUDY, series: uid('Series') };
const INSTANCE = { ...SERIES, instance: uid('SOP') };
const FRAMES = { ...INSTANCE, frames: Type.String({ description: 'Frame numbers, from 1, comma-separated (`1` or `1,3,5`).' }) };

const QIDO_FOUND = Media([DICOM_JSON], 'A DICOM JSON array of the matches, with a RetrieveURL (0008,1190) each.');
const QIDO_NONE = NoContent('Nothing matches.');
const INSTANCES = Media(['multipart/related'], 'The instances as stored, one `application/dicom` part each, with its Content-Location (`multipart/related; type="application/dicom"`).');
const METADATA = Media([DICOM_JSON], "A DICOM JSON array, one object per instance; pixel data as a BulkDataURI to the instance's frames.");
const FRAMES_BODY = Media(
  ['multipart/related'],
  'The frames, one part each, in the order asked: as stored (`image/jpeg`, `image/jls`, `image/jp2`, `image/dicom-rle`, ...) when the Accept header takes it, else uncompressed `application/octet-stream`.',
);
const BULK = Media(['multipart/related'], 'The value, one `application/octet-stream` part.');
const IMAGE = Media(['image/jpeg', 'image/png'], 'The image: JPEG, or PNG when the Accept header prefers it.');
const STOW_ALL = Media([DICOM_JSON], 'Every instance stored: ReferencedSOPSequence (0008,1199), and RetrieveURL (0008,1190) when they are of one study.');
const STOW_SOME = Media([DICOM_JSON], 'Some instances stored (ReferencedSOPSequence), some not: FailedSOPSequence (0008,1198) with each one\'s FailureReason and why.');
const STOW_NONE = Media([DICOM_JSON], 'No instance stored: FailedSOPSequence (0008,1198) with each one\'s FailureReason (0008,1197) and, in (0009,1001) of creator TESSERA, why.');

/** How one root names its project. */
interface Root<B extends TProperties, N extends Record<number, TSchema>> {
  /** `/dicom-web` or `/projects/:project/dicom-web`. */
  url: string;
  /** Put in operationIds after the verb: `searchStudies`, `searchProjectStudies`. */
  infix: string;
  /** Where the root says its project is. */
  project: ProjectScope;
  /** The root's own path parameters. */
  params: B;
  /** The errors every route of the root may answer before it looks at anything (an unknown project). */
  errors: N;
  /** "the default project" or "the project". */
  where: string;
}

/**
 * The DICOMweb routes under one root: QIDO-RS, WADO-RS (instances, metadata, frames,
 * bulk data, rendered images and thumbnails) and STOW-RS. Keys are the same under both
 * roots; operationIds are not.
 */
function dicomWebRoutesAt<const B extends TProperties, const N extends Record<number, TSchema>>(root: Root<B, N>) {
  const at = root.url;
  const id = (verb: string, rest: string) => `${verb}${root.infix}${rest}`;
  const params = <const P extends TProperties>(p: P) => Type.Object({ ...root.params, ...p });
  const common = { tags: ['dicomweb'], project: root.project, access: SCIENTIST } as const;
  const inProject = ` in ${root.where}`;

  const search = <const P extends TProperties>(rest: string, url: string, p: P, what: string) =>
    defineRoute({
      ...common,
      method: 'GET',
      url: `${at}${url}`,
      operationId: id('search', rest),
      summary: `QIDO-RS: search for ${what}${inProject}`,
      description:
        'Matches are exact, with `*` and `?` wildcards (person names case-insensitively), date and time ranges (`20240101-20240131`), and lists of UIDs. ' +
        'Answers 204 when nothing matches. A parameter that is neither a QIDO-RS parameter, a DICOM keyword nor a tag is refused (400) with its name.',
      params: params(p),
      querystring: QidoQuery,
      response: { 200: QIDO_FOUND, 204: QIDO_NONE, ...root.errors, ...errors(400, 500, 503) },
    });

  const retrieve = <const P extends TProperties>(rest: string, url: string, p: P, what: string) =>
    defineRoute({
      ...common,
      method: 'GET',
      url: `${at}${url}`,
      operationId: id('retrieve', rest),
      summary: `WADO-RS: ${what}, as stored`,
      description:
        'Tessera does not transcode: an Accept header that asks for one transfer syntax other than the stored one is refused (406); ask with `transfer-syntax=*`.',
      params: params(p),
      response: { 200: INSTANCES, ...errors(400, 404, 406, 500) },
    });

  const metadata = <const P extends TProperties>(rest: string, url: string, p: P, what: string) =>
    defineRoute({
      ...common,
      method: 'GET',
      url: `${at}${url}/metadata`,
      operationId: id('retrieve', `${rest}Metadata`),
      summary: `WADO-RS: metadata of ${what}`,
      params: params(p),
      response: { 200: METADATA, ...errors(400, 404, 500, 503) },
    });

  const rendered = <const P extends TProperties>(rest: string, url: string, p: P, what: string, kind: 'rendered' | 'thumbnail') =>
    defineRoute({
      ...common,
      method: 'GET',
      url: `${at}${url}/${kind}`,
      operationId: id('retrieve', `${rest}${kind === 'rendered' ? 'Rendered' : 'Thumbnail'}`),
      summary: `WADO-RS: ${kind === 'rendered' ? 'a rendered image' : 'a thumbnail'} of ${what} (JPEG or PNG)`,
      description:
        `The ${url.endsWith(':frames') ? 'first frame named' : 'middle frame of the middle instance'}, windowed, as JPEG or (when the Accept header prefers it) PNG` +
        `${kind === 'thumbnail' ? ', at most 128 pixels wide or high unless `viewport` says otherwise' : ''}. 406 when the instance has no pixel data or the Accept header takes neither.`,
      params: params(p),
      querystring: RenderedQuery,
      response: { 200: IMAGE, ...errors(400, 404, 406, 500, 503) },
    });

  const store = <const P extends TProperties>(rest: string, url: string, p: P, what: string) =>
    defineRoute({
      ...common,
      method: 'POST',
      url: `${at}${url}`,
      operationId: id('store', rest),
      summary: `STOW-RS: store instances${what}${inProject}`,
      description:
        'The body is `multipart/related; type="application/dicom"` (one instance per part), or one `application/dicom` instance. ' +
        'Answers 200 when every instance was stored, 202 when some were, 409 when none; a part that is not `application/dicom` is failed, not stored' +
        `${url === '/studies' ? '' : ', and so is an instance of another study than the one the path names'}. ` +
        'A body that breaks off after some parts were stored is answered 202 with the rest failed; before any, with its error (400, 413).',
      params: params(p),
      querystring: StowQuery,
      consumes: ['multipart/related', 'application/dicom'],
      response: { 200: STOW_ALL, 202: STOW_SOME, 409: STOW_NONE, ...root.errors, ...errors(400, 413, 415, 500) },
    });

  const S = '/studies/:study';
  const SE = `${S}/series/:series`;
  const I = `${SE}/instances/:instance`;
  const F = `${I}/frames/:frames`;
  return {
    searchStudies: search('Studies', '/studies', {}, 'studies'),
    searchSeries: search('Series', '/series', {}, 'series'),
    searchInstances: search('Instances', '/instances', {}, 'instances'),
    searchStudySeries: search('StudySeries', `${S}/series`, STUDY, "a study's series"),
    searchStudyInstances: search('StudyInstances', `${S}/instances`, STUDY, "a study's instances"),
    searchSeriesInstances: search('SeriesInstances', `${SE}/instances`, SERIES, "a series' instances"),

    retrieveStudy: retrieve('Study', S, STUDY, "a study's instances"),
    retrieveSeries: retrieve('Series', SE, SERIES, "a series' instances"),
    retrieveInstance: retrieve('Instance', I, INSTANCE, 'an instance'),

    retrieveStudyMetadata: metadata('Study', S, STUDY, "a study's instances"),
    retrieveSeriesMetadata: metadata('Series', SE, SERIES, "a series' instances"),
    retrieveInstanceMetadata: metadata('Instance', I, INSTANCE, 'an instance'),

    retrieveFrames: defineRoute({
      ...common,
      method: 'GET',
      url: `${at}${F}`,
      operationId: id('retrieve', 'Frames'),
      summary: 'WADO-RS: frames of an instance',
      description:
        'As stored when the Accept header takes the stored media type or any transfer syntax (`transfer-syntax=*`), or gives none; else decoded to uncompressed ' +
        '`application/octet-stream` (explicit VR little endian). 404 names how many frames the instance has.',
      params: params(FRAMES),
      response: { 200: FRAMES_BODY, ...errors(400, 404, 406, 500, 503) },
    }),
    retrieveBulkData: defineRoute({
      ...common,
      method: 'GET',
      url: `${at}${I}/bulkdata/:tag`,
      operationId: id('retrieve', 'BulkData'),
      summary: 'WADO-RS: a bulk data value of an instance',
      description: 'The value of a top-level element of the instance, named by its tag (8 hex digits, e.g. `7FE00010`).',
      params: params({ ...INSTANCE, tag: Type.String({ description: 'The tag, 8 hex digits (`7FE00010`).' }) }),
      response: { 200: BULK, ...errors(400, 404, 500, 503) },
    }),

    retrieveStudyRendered: rendered('Study', S, STUDY, 'a study', 'rendered'),
    retrieveSeriesRendered: rendered('Series', SE, SERIES, 'a series', 'rendered'),
    retrieveInstanceRendered: rendered('Instance', I, INSTANCE, 'an instance', 'rendered'),
    retrieveFramesRendered: rendered('Frames', F, FRAMES, 'a frame', 'rendered'),
    retrieveStudyThumbnail: rendered('Study', S, STUDY, 'a study', 'thumbnail'),
    retrieveSeriesThumbnail: rendered('Series', SE, SERIES, 'a series', 'thumbnail'),
    retrieveInstanceThumbnail: rendered('Instance', I, INSTANCE, 'an instance', 'thumbnail'),
    retrieveFramesThumbnail: rendered('Frames', F, FRAMES, 'a frame', 'thumbnail'),

    storeInstances: store('Instances', '/studies', {}, ''),
    storeStudyInstances: store('StudyInstances', S, STUDY, ' of one study'),
  };
}

/** DICOMweb at `/dicom-web`: the default project's. */
export const defaultDicomWebRoutes = dicomWebRoutesAt({
  url: DICOMWEB_ROOTS.default,
  infix: '',
  project: { in: 'default' },
  params: {},
  errors: {},
  where: 'the default project',
});

/** DICOMweb at `/projects/:project/dicom-web`: any project's (the ohif-viewer application's server reads these). */
export const projectDicomWebRoutes = dicomWebRoutesAt({
  url: DICOMWEB_ROOTS.project,
  infix: 'Project',
  project: { in: 'path', name: 'project' },
  params: { project: Type.String({ description: "The project's name." }) },
  errors: errors(404),
  where: 'the project',
});

/** Both roots' routes, by operationId: what the API lists and access control iterates. */
export const dicomWebRoutes: Readonly<Record<string, RouteContract>> = Object.fromEntries(
  [...Object.values(defaultDicomWebRoutes), ...Object.values(projectDicomWebRoutes)].map((r) => [r.operationId, r]),
);
