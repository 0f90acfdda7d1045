// Operator contract: the selected series are data_form.identifiers in conf/conf.json;
// the run's project is project_form. Deletes each through the platform's HTTP API
// ($TESSERA_API_URL), as any extension may, with the run's token ($TESSERA_API_TOKEN, set
// when access control is on): it acts with the rights of whoever started the run, and
// deleting data takes a principal investigator of the project.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const { WORKFLOW_DIR, TESSERA_API_URL, TESSERA_API_TOKEN } = process.env;
const headers = TESSERA_API_TOKEN ? { authorization: `Bearer ${TESSERA_API_TOKEN}` } : {};
const conf = JSON.parse(readFileSync(join(WORKFLOW_DIR, 'conf', 'conf.json'), 'utf8'));
const project = conf.project_form.name;
const series = conf.data_form.identifiers ?? [];
let deleted = 0;
let gone = 0;
for (const uid of series) {
  const res = await fetch(`${TESSERA_API_URL}/api/series/${uid}?project=${encodeURIComponent(project)}`, { method: 'DELETE', headers });
  if (res.status === 404) {
    gone++;
    console.log(`delete-series: ${uid}: already gone`);
    continue;
  }
  if (!res.ok) {
    const body = await res.text();
    let message = body;
    try {
      message = JSON.parse(body).error?.message ?? body;
    } catch {
      // not the platform's error format: shown as it came
    }
    console.error(`delete-series: ${uid}: not deleted (HTTP ${res.status}): ${message}`);
    process.exit(1);
  }
  const { instances } = await res.json();
  deleted++;
  console.log(`delete-series: ${uid}: deleted (${instances} instances)`);
}
console.log(`delete-series: ${deleted} series deleted, ${gone} already gone, project "${project}"`);
