import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allRoutes, openApiPath } from './index.ts';

const DOC = new URL('../../../docs/reference/http-api.md', import.meta.url);

/** `METHOD /path` as the reference writes it: query strings and optional parts dropped. */
function documented(): Set<string> {
  const text = readFileSync(DOC, 'utf8');
  const found = new Set<string>();
  for (const m of text.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`\s?]*)/g)) found.add(`${m[1]} ${m[2]!.replace(/\[.*$/, '')}`);
  return found;
}

/** DICOMweb is documented relative to its roots: `GET /studies` stands for `GET /dicom-web/studies` and `GET /projects/{project}/dicom-web/studies`. */
const DICOMWEB_ROOT = /^([A-Z]+) \/(dicom-web|projects\/\{project\}\/dicom-web)\//;

describe('docs/reference/http-api.md', () => {
  it('names every route of the contract, as `METHOD /path`', () => {
    const doc = documented();
    const missing = allRoutes.map((r) => `${r.method} ${openApiPath(r.url)}`).filter((r) => !doc.has(r) && !doc.has(r.replace(DICOMWEB_ROOT, '$1 /')));
    expect(missing).toEqual([]);
  });

  it('names no route the contract does not have', () => {
    const routes = new Set(allRoutes.map((r) => `${r.method} ${openApiPath(r.url)}`));
    // DICOMweb is documented relative to its two roots (`/dicom-web` and `/projects/{project}/dicom-web`).
    const extra = [...documented()].filter((d) => !routes.has(d) && !routes.has(d.replace(' /', ' /dicom-web/')));
    expect(extra).toEqual([]);
  });
});
