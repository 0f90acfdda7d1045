import { readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { RamScale, TaskSpec } from '@tessera/model';

/**
 * A glob as a RegExp over the tail of a relative path, like Python's `Path.rglob(glob)`:
 * `*.dcm` matches a file name at any depth, `sub/*.dcm` a file in any folder named `sub`
 * (`*`, `?` and `[...]` stay within one path segment).
 */
function globRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*' && (i + 2 === glob.length || glob[i + 2] === '/') && (i === 0 || glob[i - 1] === '/')) {
      // `**`: any number of folders
      out += i + 2 === glob.length ? '.*' : '(?:[^/]+/)*';
      i += 2;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) out += '\\[';
      else {
        out += `[${glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else out += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`(?:^|/)${out}$`);
}

/** The largest of `values`, 0 when there are none (no spread: channels can hold many files). */
function maxOf(values: readonly number[]): number {
  let m = 0;
  for (const v of values) if (v > m) m = v;
  return m;
}

/**
 * Sizes of the files under `dir` (recursively; symlinks to files count, as `Path.is_file()`
 * follows them) whose path relative to `dir` ends with a match of `glob` and fully matches `regex`.
 */
export function matchingFileSizes(dir: string, glob?: string | null, regex?: string | null): number[] {
  const g = globRegExp(glob || '*');
  const r = new RegExp(`^(?:${regex || '.*'})$`);
  const sizes: number[] = [];
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return; // not there (yet): counts as empty
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        walk(p);
        continue;
      }
      let size: number | undefined;
      if (e.isFile()) size = statSync(p).size;
      else if (e.isSymbolicLink()) {
        const st = statSync(p, { throwIfNoEntry: false });
        if (st?.isFile()) size = st.size;
      }
      const rel = relative(dir, p).split(sep).join('/');
      if (size !== undefined && g.test(rel) && r.test(rel)) sizes.push(size);
    }
  };
  walk(dir);
  return sizes;
}

/** The target size in bytes of a scale rule over a channel folder, by Kaapana's modes. */
export function scaleTargetBytes(
  channelDir: string,
  rule: Pick<RamScale, 'mode'> & { target_dir?: string | null; target_glob?: string | null; target_regex?: string | null },
): number {
  const sizesIn = (d: string): number[] => matchingFileSizes(join(d, rule.target_dir ?? ''), rule.target_glob, rule.target_regex);
  if (rule.mode === 'max_item_sum') {
    let items: string[] = [];
    try {
      items = readdirSync(channelDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      // no channel folder: no items
    }
    return maxOf(items.map((item) => sizesIn(join(channelDir, item)).reduce((a, b) => a + b, 0)));
  }
  const sizes = sizesIn(channelDir);
  return rule.mode === 'max_file_size' ? maxOf(sizes) : sizes.reduce((a, b) => a + b, 0);
}

/**
 * The task with `resources.ram_mb` raised to what its scale rules ask for, from the sizes
 * of its inputs in the workflow dir (Kaapana's scale rules of type "limit"); the task
 * itself when it has no rules or they ask for less.
 */
export function withScaledRam(workflowDir: string, task: TaskSpec): TaskSpec {
  const rules = task.resources?.ram_scale;
  if (!rules || rules.length === 0) return task;
  let mb = task.resources?.ram_mb ?? 0;
  for (const rule of rules) {
    const bytes = rule.factor * scaleTargetBytes(join(workflowDir, rule.source), rule) ** (rule.power ?? 1);
    mb = Math.max(mb, Math.ceil(bytes / (1024 * 1024)));
  }
  if (mb === (task.resources?.ram_mb ?? 0)) return task;
  return { ...task, resources: { ...task.resources, ram_mb: mb } };
}
