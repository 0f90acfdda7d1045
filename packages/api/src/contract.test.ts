import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { allRoutes, API_TAGS, ErrorResponse, isMedia, openApiDocument, openApiPath } from './index.ts';

const doc = () => openApiDocument(allRoutes, { title: 'Tessera API', version: '0.0.0-test', description: 'test', tags: API_TAGS });

describe('the HTTP contract', () => {
  it('gives every route a success answer with a schema, errors in the common shape, a project scope and an access rule', () => {
    const missing: string[] = [];
    for (const r of allRoutes) {
      const name = `${r.method} ${r.url}`;
      const success = Object.entries(r.response).filter(([s]) => Number(s) >= 200 && Number(s) < 400);
      if (success.length === 0) missing.push(`${name}: no success answer`);
      for (const [status, schema] of success) {
        const s = schema as Record<string, unknown>;
        if (!isMedia(schema) && s.type === undefined && s.anyOf === undefined && s.allOf === undefined && s.$ref === undefined) missing.push(`${name}: ${status} has no schema`);
      }
      for (const [status, schema] of Object.entries(r.response)) {
        // An error is the common ErrorResponse, or carries its `error` beside more (an upload's results),
        // or is a non-JSON body a standard defines (STOW-RS answers 409 in DICOM JSON).
        const s = schema as { $id?: string; properties?: { error?: unknown } };
        const common = s.$id === 'ErrorResponse' || JSON.stringify(s.properties?.error) === JSON.stringify(ErrorResponse.properties.error) || isMedia(schema);
        if (Number(status) >= 400 && !common) missing.push(`${name}: ${status} is not an ErrorResponse`);
      }
      if (!r.project?.in) missing.push(`${name}: no project scope`);
      if (!r.access?.who) missing.push(`${name}: no access rule`);
      if (!Object.keys(r.response).includes('500')) missing.push(`${name}: no 500 answer`);
    }
    expect(missing).toEqual([]);
  });

  it('names each route once', () => {
    const seen = new Map<string, number>();
    for (const r of allRoutes) seen.set(`${r.method} ${openApiPath(r.url)}`, (seen.get(`${r.method} ${openApiPath(r.url)}`) ?? 0) + 1);
    expect([...seen].filter(([, n]) => n > 1)).toEqual([]);
  });

  it('says in each route with path parameters what they are', () => {
    const bad: string[] = [];
    for (const r of allRoutes) {
      const names = [...r.url.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
      if (r.url.endsWith('*')) names.push('*');
      const declared = Object.keys(((r.params ?? {}) as { properties?: object }).properties ?? {});
      if (names.sort().join() !== declared.sort().join()) bad.push(`${r.method} ${r.url}: path has ${names.join(', ') || 'none'}, params declare ${declared.join(', ') || 'none'}`);
    }
    expect(bad).toEqual([]);
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(doc() as unknown as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('gives a typed client from a common generator (openapi-typescript) that compiles', async () => {
    const ast = await openapiTS(doc() as unknown as Parameters<typeof openapiTS>[0]);
    const source = astToString(ast);
    const dir = await mkdtemp(join(tmpdir(), 'tessera-openapi-'));
    try {
      const file = join(dir, 'tessera-api.ts');
      // A client would use the generated types like this.
      const use = `
type Health = components['schemas']['Health'];
const h: Health | undefined = undefined;
type ListProjects = paths['/api/projects']['get']['responses'][200]['content']['application/json'];
export const names = (p: ListProjects) => p.items.map((i) => i.name);
export { h };`;
      await writeFile(file, `${source}\n${use}\n`);
      const program = ts.createProgram([file], { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, skipLibCheck: true, types: [] });
      const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      expect(diagnostics).toEqual([]);
      expect(source).toContain('operations');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
