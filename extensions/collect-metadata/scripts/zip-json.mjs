// Operator contract: zip every JSON file of $WORKFLOW_DIR/$OPERATOR_IN_DIR into
// $WORKFLOW_DIR/$OPERATOR_OUT_DIR/metadata.zip.
import { createWriteStream, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import yazl from 'yazl';

const { WORKFLOW_DIR, OPERATOR_IN_DIR, OPERATOR_OUT_DIR } = process.env;
const src = join(WORKFLOW_DIR, OPERATOR_IN_DIR);
const out = join(WORKFLOW_DIR, OPERATOR_OUT_DIR);
mkdirSync(out, { recursive: true });
const files = readdirSync(src).filter((f) => f.endsWith('.json')).sort();
const zip = new yazl.ZipFile();
for (const f of files) zip.addFile(join(src, f), f);
zip.end();
await new Promise((resolve, reject) => {
  zip.outputStream.pipe(createWriteStream(join(out, 'metadata.zip'))).on('close', resolve).on('error', reject);
});
console.log(`zip-json: ${files.length} JSON file(s) -> ${join(out, 'metadata.zip')}`);
