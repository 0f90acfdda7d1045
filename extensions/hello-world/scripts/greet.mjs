// Operator contract: write into $WORKFLOW_DIR/$OPERATOR_OUT_DIR (batch level).
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const { WORKFLOW_DIR, OPERATOR_OUT_DIR, BATCHES_INPUT_DIR, MESSAGE = 'Hello', REPEAT = '1' } = process.env;
const out = join(WORKFLOW_DIR, OPERATOR_OUT_DIR);
mkdirSync(out, { recursive: true });
const text = Array.from({ length: Number(REPEAT) }, () => MESSAGE).join('\n');
writeFileSync(join(out, 'greeting.txt'), `${text}\n`);
let series = [];
try {
  series = readdirSync(BATCHES_INPUT_DIR);
} catch {
  // no data selected: a batch dir is made only for selected series
}
console.log(`greet: wrote ${join(out, 'greeting.txt')} (${series.length} series selected)`);
