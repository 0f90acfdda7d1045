import { spawnSync } from 'node:child_process';
import { accessSync, constants, lstatSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { groupMembers, killGroup } from './proc-table.ts';

/**
 * What a sandboxed process sees besides the system's read-only folders (/usr, /bin,
 * /lib*, /etc), a private /tmp, /proc and /dev. Folders are seen at their host paths, so
 * that the paths in the operator contract's environment stay true inside.
 */
export interface SandboxView {
  /** Folders it reads and writes: a run's workflow dir; an application's instance dir, its result bucket. */
  readWrite: string[];
  /** Folders it only reads: its extension folder. */
  readOnly: string[];
  /** Its working directory, one of the folders above. */
  cwd: string;
}

/** The outcome of looking for a working bubblewrap on this machine. */
export type SandboxProbe = { sandbox: BwrapSandbox; reason?: undefined } | { sandbox?: undefined; reason: string };

/** Folders of the root that hold programs and libraries; on merged-/usr systems, symbolic links into /usr. */
const SYSTEM_DIRS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/**
 * Runs local processes (process tasks, process applications) in a bubblewrap sandbox:
 * new mount, PID, IPC and UTS namespaces, no capabilities, the network shared (tasks call
 * TESSERA_API_URL, applications listen for the proxy). Nothing of the server's home (its
 * database, other runs, other projects' buckets), of /root, /home, /var or /run is
 * mounted: a process can only see what its view names (docs/adr/0014-sandboxing-process-tasks.md).
 */
export class BwrapSandbox {
  readonly path: string;
  /** `bubblewrap 0.8.0`, as `bwrap --version` says. */
  readonly version: string;
  /** The system part of every sandbox, computed once: /etc's secrets are looked for at the server's start. */
  readonly #system: string[];

  constructor(path: string, version: string, system: string[]) {
    this.path = path;
    this.version = version;
    this.#system = system;
  }

  /** The argv that runs `command` in the sandbox with the given view. */
  wrap(command: string[], view: SandboxView): string[] {
    const args = [this.path, ...this.#system];
    const seen = new Set<string>();
    // Read-write first: a read-only folder inside a read-write one stays read-only.
    for (const [flag, dirs] of [['--bind', view.readWrite], ['--ro-bind', view.readOnly]] as const) {
      for (const d of dirs) {
        const dir = resolve(d);
        if (seen.has(`${flag} ${dir}`)) continue;
        seen.add(`${flag} ${dir}`);
        // The source resolved (a symbolic link on the host path is not there inside), mounted at the path the process is told.
        args.push(flag, realpathSync(dir), dir);
      }
    }
    // The root is bubblewrap's own tmpfs: read-only once the mount points are made, so that
    // nothing is written where it would go unseen (and fill memory); /tmp stays writable.
    args.push('--remount-ro', '/', '--chdir', view.cwd, '--', ...command);
    return args;
  }
}

/**
 * Looks for bubblewrap (on PATH, else /usr/bin/bwrap) and runs `true` in a sandbox with
 * the system part of every sandbox, once: where user namespaces are off, or in a
 * container without the right to make mounts, bwrap is there but does not work.
 */
export function probeBwrap(options: { path?: string; timeoutMs?: number; hidden?: string[] } = {}): SandboxProbe {
  const path = options.path ?? findOnPath('bwrap') ?? (isExecutable('/usr/bin/bwrap') ? '/usr/bin/bwrap' : undefined);
  if (!path) return { reason: 'bubblewrap (bwrap) is not installed' };
  const system = systemArgs(options.hidden ?? []);
  const run = spawnSync(path, [...system, '--remount-ro', '/', '--', 'true'], { encoding: 'utf8', timeout: options.timeoutMs ?? 10_000, env: { PATH: '/usr/bin:/bin' } });
  if (run.error) return { reason: `${path} could not be run: ${run.error.message}` };
  if (run.status !== 0) {
    const said = run.stderr.trim().split('\n').slice(-2).join(' ') || `exit code ${run.status ?? run.signal}`;
    return { reason: `${path} is installed but cannot make a sandbox here (${said}); user namespaces may be off, or this is a container without the right to make mounts` };
  }
  const version = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 5000 }).stdout?.trim() || 'bubblewrap';
  return { sandbox: new BwrapSandbox(path, version, system) };
}

/**
 * The system part of a sandbox: namespaces, no capabilities, the read-only system folders,
 * /etc without its secrets, private /tmp, /proc, /dev. `hidden`: the server's own folders
 * (its home, its state folder), covered by an empty tmpfs where a system folder would
 * show them (a TESSERA_HOME under /etc or /usr).
 */
function systemArgs(hidden: string[]): string[] {
  const args = [
    // No network namespace: tasks reach the API at TESSERA_API_URL, applications listen for the proxy.
    '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try',
    // As root (the server often is), a sandbox with capabilities could make device nodes and mount the disk.
    '--cap-drop', 'ALL',
    // Not --new-session: the task's processes must stay in the process group that stop()
    // signals. Tasks and applications have no controlling terminal (their launchers call setsid).
    '--ro-bind', '/usr', '/usr',
  ];
  for (const dir of SYSTEM_DIRS) {
    let st;
    try {
      st = lstatSync(dir);
    } catch {
      continue; // not on this system
    }
    if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(dir), dir);
    else if (st.isDirectory()) args.push('--ro-bind', dir, dir);
  }
  args.push('--ro-bind', '/etc', '/etc', ...etcMasks('/etc'));
  // A resolver or hosts file kept elsewhere (systemd-resolved's /run/...): the network is shared, so name lookups should work too.
  for (const name of ['resolv.conf', 'hosts']) {
    const file = join('/etc', name);
    try {
      if (!lstatSync(file).isSymbolicLink()) continue;
      const target = realpathSync(file);
      if (!target.startsWith('/usr/') && !target.startsWith('/etc/')) args.push('--ro-bind', target, target);
    } catch {
      // dangling or absent: nothing to add
    }
  }
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');
  // The server's own Node.js when it is not a system one (nvm, /opt, even /tmp): process
  // extensions run `node`. The binary alone (it needs nothing beside it to run a script).
  const node = realpathSync(process.execPath);
  if (!node.startsWith('/usr/')) args.push('--ro-bind', node, node);
  const shown = ['/usr', '/etc', ...SYSTEM_DIRS];
  for (const h of hidden) {
    const dir = resolve(h);
    // Only where a folder mounted above shows it; elsewhere it is not in the sandbox at all.
    // Writable (private, in memory): a run's workflow dir below it is mounted over it later.
    if (shown.some((s) => dir === s || dir.startsWith(`${s}/`)) && isDirectory(dir)) args.push('--tmpfs', dir);
  }
  return args;
}

/**
 * What in /etc only root (or a group) may read: /etc/shadow, private keys, the
 * credentials files of other services. A sandboxed process runs as the server's user,
 * often root, so the file modes would not keep it out: each such file is hidden behind
 * /dev/null and each such folder behind an empty read-only tmpfs. The rule is the
 * system's own: what another user of this machine cannot read, a task cannot either.
 */
function etcMasks(dir: string): string[] {
  const args: string[] = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return args;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isSymbolicLink()) continue; // its target is masked where it is, or not mounted at all
    let mode: number;
    try {
      mode = lstatSync(path).mode;
    } catch {
      continue; // gone meanwhile
    }
    if (e.isDirectory()) {
      if ((mode & 0o005) !== 0o005) args.push('--tmpfs', path, '--remount-ro', path);
      else args.push(...etcMasks(path));
    } else if ((mode & 0o004) === 0) {
      args.push('--ro-bind', '/dev/null', path);
    }
  }
  return args;
}

/**
 * SIGTERM to the process group led by `pgid` (a task or an application). When the
 * leader is bubblewrap's monitor, every member but it gets the signal: the monitor
 * does not pass signals on, it dies of SIGTERM, and the launcher would then kill the
 * whole group at once, without the grace the task is owed. The sandbox's init (PID 1
 * inside) ignores it too, so the task itself decides; when its main process ends, the
 * sandbox and the monitor end with it, with its exit code.
 */
export function terminateGroup(pgid: number): void {
  if (!isBwrap(pgid)) return killGroup(pgid, 'SIGTERM');
  for (const pid of groupMembers(pgid)) {
    if (pid === pgid) continue;
    try {
      process.kill(pid, 'SIGTERM');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
}

/**
 * The node_modules folders above `dir`, where Node looks for what a script in `dir`
 * imports (`import dcmjs from 'dcmjs'` in a built-in extension of the repository finds the
 * repository's node_modules). Installed code, read-only in a sandbox: without them a
 * JavaScript task of a built-in extension could not load its dependencies.
 */
export function moduleFoldersAbove(dir: string): string[] {
  const found: string[] = [];
  for (let d = dirname(resolve(dir)); ; d = dirname(d)) {
    const candidate = join(d, 'node_modules');
    try {
      if (statSync(candidate).isDirectory()) found.push(candidate);
    } catch {
      // none here
    }
    if (d === dirname(d)) return found;
  }
}

function isBwrap(pid: number): boolean {
  try {
    return basename(readlinkSync(`/proc/${pid}/exe`)) === 'bwrap';
  } catch {
    return false; // gone, or not ours to read
  }
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
