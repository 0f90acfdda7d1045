import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { RamScale, TaskSpec } from '@tessera/model';

/** A glob of one path segment (`*`, `?`, `[...]`) as a RegExp. */
function globRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') out += '[^/]*';
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
  return new RegExp(`^${out}$`);
}

/** Sizes of the files under `dir` (recursively) whose name matches `glob` and whose path relative to `dir` fully matches `regex`. */
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
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && g.test(e.name) && r.test(relative(dir, p))) sizes.push(statSync(p).size);
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
    return Math.max(0, ...items.map((item) => sizesIn(join(channelDir, item)).reduce((a, b) => a + b, 0)));
  }
  const sizes = sizesIn(channelDir);
  return rule.mode === 'max_file_size' ? Math.max(0, ...sizes) : sizes.reduce((a, b) => a + b, 0);
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
