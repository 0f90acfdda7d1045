import { createInterface } from 'node:readline/promises';

/** Where a confirmation is asked: a terminal's stdin and stderr, or streams of a test. */
export interface Prompt {
  input: NodeJS.ReadableStream & { isTTY?: boolean };
  output: NodeJS.WritableStream & { isTTY?: boolean };
}

/** True when a person can answer: both stdin and stderr are terminals. */
export function canAsk(p: Prompt = { input: process.stdin, output: process.stderr }): boolean {
  return p.input.isTTY === true && p.output.isTTY === true;
}

/** Asks a yes/no question; only `y` or `yes` (any case) is a yes, anything else (or end of input) a no. */
export async function confirm(question: string, p: Prompt = { input: process.stdin, output: process.stderr }): Promise<boolean> {
  const rl = createInterface({ input: p.input, output: p.output, terminal: false });
  try {
    p.output.write(`${question} [y/N] `);
    const answer = await new Promise<string>((resolve) => {
      rl.once('line', resolve);
      rl.once('close', () => resolve(''));
    });
    return /^(y|yes)$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
