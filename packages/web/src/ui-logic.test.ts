import { describe, expect, it } from 'vitest';
import { layout } from './components/DagGraph.tsx';
import { topicsOf } from './live.ts';
import { ApiError, qs, toApiError } from './api.ts';
import { taskFormConf, taskFormTasks } from './components/task-form.ts';

describe('the DAG layout', () => {
  it('puts each task one layer right of its deepest upstream and keeps layers apart', () => {
    const pos = layout([
      { id: 'greet', label: 'greet', state: 'success', upstream: [] },
      { id: 'a', label: 'a', state: 'running', upstream: ['greet'] },
      { id: 'b', label: 'b', state: 'queued', upstream: ['greet'] },
      { id: 'sum', label: 'sum', state: 'none', upstream: ['a', 'b', 'greet'] },
    ]);
    expect(pos.get('greet')!.layer).toBe(0);
    expect(pos.get('a')!.layer).toBe(1);
    expect(pos.get('b')!.layer).toBe(1);
    expect(pos.get('sum')!.layer).toBe(2);
    expect(pos.get('a')!.y).not.toBe(pos.get('b')!.y);
    expect(pos.get('sum')!.x).toBeGreaterThan(pos.get('a')!.x);
  });

  it('does not loop on a cycle or an unknown upstream', () => {
    const pos = layout([
      { id: 'x', label: 'x', state: 'none', upstream: ['y', 'ghost'] },
      { id: 'y', label: 'y', state: 'none', upstream: ['x'] },
    ]);
    expect(pos.size).toBe(2);
  });
});

describe('live hints', () => {
  it('maps the server event types to the pages that show them', () => {
    expect(topicsOf('task', '{"type":"task","run":"r-1"}')).toEqual(new Set(['runs']));
    expect(topicsOf('import', '{}')).toEqual(new Set(['series', 'datasets']));
    expect(topicsOf('extension', '{}')).toEqual(new Set(['extensions', 'workflows', 'applications']));
    expect(topicsOf('ready', '{}')).toEqual(new Set());
    expect(topicsOf('something-new', 'opaque')).toBe('all');
  });
});

describe('the API client', () => {
  it('reads the server error shape, fields included', async () => {
    const res = new Response(JSON.stringify({ error: { code: 'TESSERA_INVALID_FORM', message: 'workflow_form.repeat: must be <= 10', details: [{ where: 'workflow_form.repeat', message: 'must be <= 10' }] } }), { status: 400 });
    const err = await toApiError(res, 'POST /api/jobs');
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('TESSERA_INVALID_FORM');
    expect(err.fieldErrors()).toEqual({ 'workflow_form.repeat': 'must be <= 10' });
  });

  it('makes a readable message of an answer that is not JSON', async () => {
    const err = await toApiError(new Response('<html><body>Bad Gateway</body></html>', { status: 502, statusText: 'Bad Gateway' }), 'GET /api/runs');
    expect(err.message).toBe('GET /api/runs failed: 502 Bad Gateway: Bad Gateway');
  });

  it('leaves empty values out of query strings and repeats lists', () => {
    expect(qs({ project: 'admin', q: '', tag: ['A=1', 'B=2'], limit: 5, x: undefined })).toBe('?project=admin&tag=A%3D1&tag=B%3D2&limit=5');
  });
});

describe('the task settings of a run (conf.task_form)', () => {
  it('lists the tasks with settings and sends the values in Kaapana\'s list shape, as text', () => {
    const schema = {
      type: 'object',
      properties: {
        generate: { type: 'object', properties: { COUNT: { type: 'integer', default: 3 }, FAST: { type: 'boolean', default: false } } },
        idle: { type: 'object', properties: {} },
        summarize: { type: 'object', properties: { STATISTIC: { type: 'string', enum: ['sum', 'max'], default: 'sum' } } },
      },
    };
    expect(taskFormTasks(schema)).toEqual(['generate', 'summarize']);
    expect(taskFormTasks(undefined)).toEqual([]);
    expect(taskFormConf({ generate: { COUNT: 5, FAST: true }, summarize: { STATISTIC: 'max' }, idle: {} })).toEqual({
      generate: { env: [{ name: 'COUNT', value: '5' }, { name: 'FAST', value: 'true' }] },
      summarize: { env: [{ name: 'STATISTIC', value: 'max' }] },
    });
    expect(taskFormConf({})).toBeUndefined();
  });
});
