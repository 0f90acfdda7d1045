import { probeBwrap, type BwrapSandbox } from '../runners/process/sandbox.ts';

const probe = probeBwrap();

/** The sandbox of local processes on this machine (bubblewrap), or undefined. */
export const sandbox: BwrapSandbox | undefined = probe.sandbox;

/** Why the sandbox tests cannot run here, or undefined. */
export const sandboxProblem = probe.sandbox ? undefined : `${probe.reason}; install it: apt-get install bubblewrap`;

/** Skip only outside CI: in CI (CI=true) a missing bubblewrap must fail the tests, never skip them. */
export const skipSandbox = sandboxProblem !== undefined && process.env.CI !== 'true';
if (skipSandbox) console.warn(`sandbox tests skipped: ${sandboxProblem}`);

/** The sandbox, or a failed expectation that says why there is none (in CI, where nothing is skipped). */
export function requireSandbox(): BwrapSandbox {
  if (!sandbox) throw new Error(`these tests need a working bubblewrap: ${sandboxProblem}`);
  return sandbox;
}
