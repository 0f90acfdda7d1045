import { Type, type Static } from '@sinclair/typebox';
import { DateTime, errors, Obj, OrderParam, PageOf, PageParams, ProjectQuery, SortParam } from './common.ts';
import { defineRoute, Media, SCIENTIST } from './route.ts';

export const ResultFile = Obj(
  {
    run_id: Type.String({ description: 'The run whose `putFiles()` task stored it.' }),
    path: Type.String({ description: "Its path in the run's bucket (`/`-separated), as the task's workflow dir named it." }),
    size_bytes: Type.Integer(),
    modified_at: DateTime(),
    url: Type.String({ description: 'Where to download it: `/api/results/<run>/files/<path>?project=<project>`.' }),
  },
  {
    $id: 'ResultFile',
    description: "A file of a project's result bucket: what a run's put-files task stored for download.",
    examples: [
      {
        run_id: 'r-mwucl8qz-0003a1f2',
        path: 'batch/1.2.826.0.1.3680043.8.498.1/summarize/summary.json',
        size_bytes: 1024,
        modified_at: '2026-01-02T09:02:11.000Z',
        url: '/api/results/r-mwucl8qz-0003a1f2/files/batch/1.2.826.0.1.3680043.8.498.1/summarize/summary.json?project=admin',
      },
    ],
  },
);
export type ResultFile = Static<typeof ResultFile>;

/** `sort` fields of the result lists; the default is newest run first, then by path. */
export const RESULT_SORTS = ['run_id', 'path', 'size_bytes', 'modified_at'] as const;

const ResultQuery = Type.Intersect([ProjectQuery, Type.Object({ sort: SortParam(RESULT_SORTS, '-run_id'), order: OrderParam, ...PageParams(1000, 10_000) })]);
export type ResultQuery = Static<typeof ResultQuery>;

const tags = ['results'];
const project = { in: 'query', name: 'project' } as const;

/** The result buckets' routes: what put-files stored, per project and run. */
export const resultRoutes = {
  list: defineRoute({
    method: 'GET',
    url: '/api/results',
    operationId: 'listResults',
    tags,
    summary: "Files in the project's result bucket (from put-files), newest run first",
    project,
    access: SCIENTIST,
    querystring: ResultQuery,
    response: { 200: PageOf(ResultFile), ...errors(400, 404, 500) },
  }),
  ofRun: defineRoute({
    method: 'GET',
    url: '/api/results/:run',
    operationId: 'listRunResults',
    tags,
    summary: 'Result files of one run',
    description: 'An empty list when the run stored none (or does not exist).',
    project,
    access: SCIENTIST,
    params: Type.Object({ run: Type.String({ pattern: '^[A-Za-z0-9_-]+$', description: 'The run id.' }) }),
    querystring: ResultQuery,
    response: { 200: PageOf(ResultFile), ...errors(400, 404, 500) },
  }),
  download: defineRoute({
    method: 'GET',
    url: '/api/results/:run/files/*',
    operationId: 'downloadResultFile',
    tags,
    summary: 'Download one result file',
    description: 'As an attachment named after the file. A path that leaves the run\'s bucket is a 400.',
    project,
    access: SCIENTIST,
    params: Type.Object({
      run: Type.String({ description: 'The run id.' }),
      '*': Type.String({ description: "The file's path in the run's bucket, as `path` of the list names it." }),
    }),
    querystring: ProjectQuery,
    response: { 200: Media(['application/octet-stream'], 'The file.'), ...errors(400, 404, 500) },
  }),
} as const;
