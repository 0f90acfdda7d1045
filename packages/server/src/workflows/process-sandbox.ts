import { probeBwrap, type BwrapSandbox, type SandboxProbe } from '@tessera/engine';
import type { ServerConfig } from '../config.ts';

/** How the local processes the server starts (process tasks, process applications) are isolated here. */
export interface ProcessSandbox {
  /** The sandbox every local process runs in; undefined when there is none (not found, or TESSERA_SANDBOX=off). */
  sandbox: BwrapSandbox | undefined;
  /** Set when local processes must not run at all: what a task fails with and a launch answers. */
  refusal: string | undefined;
  /** How local processes run, for the runner report (banner, /api/health, /api/system). */
  detail: string;
  /** What the admin must know at the start when there is no sandbox (banner, log, /api/system's runner notes). */
  warning: string | undefined;
}

const INSTALL = 'install bubblewrap (apt-get install bubblewrap) and restart the server';

/**
 * The rule of docs/guides/operations.md, "Sandboxing process tasks and applications":
 * a sandbox when bubblewrap works here (TESSERA_SANDBOX=auto, the default) or no start
 * without it (bwrap). Without one, a token scoped to a run's project means nothing (a
 * task could read the database and every project's files), so with access control on
 * local processes are refused unless the admin allows them (TESSERA_ALLOW_UNSANDBOXED=1);
 * with it off (one user on a laptop) they run, and the server warns.
 */
export function decideProcessSandbox(
  config: Pick<ServerConfig, 'sandbox' | 'allowUnsandboxed' | 'auth'> & Partial<Pick<ServerConfig, 'home' | 'stateDir'>>,
  // The home and the state folder are hidden even where a system folder would show them (a home under /etc).
  probe: () => SandboxProbe = () => probeBwrap({ hidden: [config.home, config.stateDir].filter((d): d is string => d !== undefined) }),
): ProcessSandbox {
  let why: string;
  if (config.sandbox === 'off') {
    why = 'TESSERA_SANDBOX=off';
  } else {
    const found = probe();
    if (found.sandbox) {
      return { sandbox: found.sandbox, refusal: undefined, detail: `sandboxed with ${found.sandbox.version} (${found.sandbox.path})`, warning: undefined };
    }
    if (config.sandbox === 'bwrap') {
      throw new Error(`TESSERA_SANDBOX=bwrap asks for a sandbox, but ${found.reason}; ${INSTALL}, or set TESSERA_SANDBOX=auto to start without one`);
    }
    why = found.reason;
  }
  if (config.auth === 'on' && !config.allowUnsandboxed) {
    return {
      sandbox: undefined,
      refusal:
        `this server runs no local process without a sandbox, and it has none (${why}); with access control on, a process task or application could read ` +
        `the server's database and every project's files. To fix: ${INSTALL} (TESSERA_SANDBOX=auto finds it), ` +
        'or set TESSERA_ALLOW_UNSANDBOXED=1 to run local processes unsandboxed anyway',
      detail: 'refused: no sandbox',
      warning: `no sandbox for process tasks and applications (${why}): they are refused while access control is on; ${INSTALL}, or set TESSERA_ALLOW_UNSANDBOXED=1 to run them unsandboxed`,
    };
  }
  const allowedBy = config.auth === 'off' ? 'TESSERA_AUTH=off' : 'TESSERA_ALLOW_UNSANDBOXED=1';
  return {
    sandbox: undefined,
    refusal: undefined,
    detail: `NOT sandboxed (${allowedBy})`,
    warning: `process tasks and applications run WITHOUT a sandbox (${why}; allowed by ${allowedBy}): they can read all that the server's user can, its database and tokens included; ${INSTALL}`,
  };
}
