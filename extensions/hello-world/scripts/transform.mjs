// Reads the greeting from $OPERATOR_IN_DIR, writes a transformed copy to $OPERATOR_OUT_DIR.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const { WORKFLOW_DIR, OPERATOR_IN_DIR, OPERATOR_OUT_DIR, MODE } = process.env;
const input = readFileSync(join(WORKFLOW_DIR, OPERATOR_IN_DIR, 'greeting.txt'), 'utf8').trimEnd();
const lines = input.split('\n');
const result = MODE === 'reverse' ? lines.map((l) => [...l].reverse().join('')) : lines.map((l) => l.toUpperCase());
writeFileSync(join(WORKFLOW_DIR, OPERATOR_OUT_DIR, 'greeting.txt'), `${result.join('\n')}\n`);
console.log(`transform (${MODE}): ${result[0]}`);
