// Collects every greeting.txt of the run into summary.json.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const { WORKFLOW_DIR, OPERATOR_OUT_DIR, RUN_ID, DAG_ID } = process.env;
const outputs = {};
for (const dir of readdirSync(WORKFLOW_DIR)) {
  const file = join(WORKFLOW_DIR, dir, 'greeting.txt');
  if (existsSync(file)) outputs[dir] = readFileSync(file, 'utf8').trimEnd();
}
const summary = { run_id: RUN_ID, dag_id: DAG_ID, outputs };
writeFileSync(join(WORKFLOW_DIR, OPERATOR_OUT_DIR, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
console.log(JSON.stringify(summary, null, 2));
