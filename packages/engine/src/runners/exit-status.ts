import type { TaskOutcome } from './runner.ts';

/** Kaapana's exit-code contract: 0 = success, 126 = skipped, anything else = failed. */
export function outcomeFromExit(code: number | null, signal: NodeJS.Signals | string | null): TaskOutcome {
  if (code === 0) return { state: 'success', exitCode: 0 };
  if (code === 126) return { state: 'skipped', exitCode: 126, reason: 'the operator asked to be skipped (exit code 126)' };
  if (code !== null) return { state: 'failed', exitCode: code, reason: `exited with code ${code}` };
  return { state: 'failed', reason: `killed by signal ${signal ?? 'unknown'}` };
}
