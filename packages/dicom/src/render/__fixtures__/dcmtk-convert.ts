import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Runs a dcmtk converter (dcmcjpeg, dcmcjpls, dcmcrle…) from `input` to a new file in `dir`, and returns its path. */
export function dcmtkConvert(options: { tool: string; args: string[]; input: string; dir: string; name: string }): string {
  const output = join(options.dir, options.name);
  execFileSync(options.tool, [...options.args, options.input, output], { stdio: ['ignore', 'ignore', 'pipe'] });
  return output;
}
