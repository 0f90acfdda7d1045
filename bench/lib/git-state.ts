import { spawnSync } from 'node:child_process';

/** Commit and local changes of the measured checkout, for the report: the code may change between runs. */
export function gitState(repo: string): string {
  const git = (...a: string[]): string | undefined => {
    const r = spawnSync('git', ['-C', repo, ...a], { encoding: 'utf8' });
    // trimEnd only: porcelain lines start with a status column that may be a space.
    return r.status === 0 ? r.stdout.trimEnd() : undefined;
  };
  const head = git('rev-parse', '--short', 'HEAD');
  if (!head) return `${repo} (not a git checkout)`;
  const dirty = (git('status', '--porcelain', '--', 'packages', 'bin') ?? '').split('\n').filter(Boolean);
  return `${repo} at ${head}${dirty.length > 0 ? `, with ${dirty.length} uncommitted change(s) under packages/ and bin/: ${dirty.map((l) => l.slice(3)).join(', ')}` : ', no local changes under packages/ and bin/'}`;
}
