// Operator contract: for each series in $BATCHES_INPUT_DIR, read the DICOM files of
// $OPERATOR_IN_DIR and write their metadata (DICOM JSON model, bulk data left out)
// to $WORKFLOW_DIR/$OPERATOR_OUT_DIR/<series>.json.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dcmjs from 'dcmjs';

const { WORKFLOW_DIR, OPERATOR_IN_DIR, OPERATOR_OUT_DIR, BATCHES_INPUT_DIR, INSTANCES = 'first' } = process.env;
const out = join(WORKFLOW_DIR, OPERATOR_OUT_DIR);
mkdirSync(out, { recursive: true });
const BULK = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'UN']);

/** Drops bulk binary values: metadata, not pixels. */
function strip(dict) {
  const outDict = {};
  for (const [tag, el] of Object.entries(dict)) {
    if (BULK.has(el.vr)) continue;
    if (el.vr === 'SQ') outDict[tag] = { vr: 'SQ', Value: (el.Value ?? []).map(strip) };
    else outDict[tag] = el;
  }
  return outDict;
}

let series = [];
try {
  series = readdirSync(BATCHES_INPUT_DIR).sort();
} catch {
  // no series selected
}
let instances = 0;
for (const uid of series) {
  const dir = join(BATCHES_INPUT_DIR, uid, OPERATOR_IN_DIR);
  const files = readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
  const pick = INSTANCES === 'all' ? files : files.slice(0, 1);
  const metadata = pick.map((f) => {
    const bytes = readFileSync(join(dir, f));
    const data = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), { untilTag: '7FE00010', includeUntilTagValue: false });
    return strip(data.dict);
  });
  instances += pick.length;
  writeFileSync(join(out, `${uid}.json`), JSON.stringify({ series_instance_uid: uid, instances: metadata }, null, 1));
}
console.log(`dcm2json: ${series.length} series, metadata of ${instances} instance(s) -> ${out}`);
