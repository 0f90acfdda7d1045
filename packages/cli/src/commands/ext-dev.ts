import { existsSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import type { AnswerOf, applicationRoutes, LaunchApp } from '@tessera/api';
import { buildPackage, readManifest, type ExtensionManifest } from '@tessera/extension-packages';
import { TesseraError } from '@tessera/model';
import type { ApiClient } from '../api-client.ts';
import { installAndWait, serverSharesDocker, uploadPackage } from './ext-command.ts';

const IGNORED = /^(dist|node_modules|\.git|\.compiled|\.tessera)(\/|$)|(^|\/)(\.#|#|~)|\.(swp|swx|tmp)$|~$/;

function clock(): string {
  return new Date().toTimeString().slice(0, 8);
}

/**
 * `tessera ext dev [folder]`: installs the folder into the running platform, then
 * watches it; each save rebuilds what changed (the DAG, or an image whose context
 * changed) and installs it again. Errors are printed with their file and line, and
 * the watch goes on. Ends on Ctrl-C (or when `signal` aborts).
 */
export async function extDevCommand(api: ApiClient, folder: string, o: { signal?: AbortSignal; param?: string[] } = {}): Promise<number> {
  const root = resolve(folder);
  const sameEngine = await serverSharesDocker(api);
  let manifest: ExtensionManifest | undefined;
  let pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running = Promise.resolve();
  let first = true;

  const cycle = async (changed: string[]): Promise<void> => {
    const started = Date.now();
    try {
      manifest = await readManifest(root);
      const contexts = (manifest.images ?? []).flatMap((i) => (i.context === undefined ? [] : [{ name: i.name, context: relative(root, resolve(root, i.context)).split(sep).join('/') }]));
      const rebuilt = new Set(first || changed.includes('tessera-extension.json')
        ? contexts.map((c) => c.name)
        : contexts.filter((c) => changed.some((f) => c.context === '' || f === c.context || f.startsWith(`${c.context}/`))).map((c) => c.name));
      const built = await buildPackage(root, {
        images: sameEngine ? 'reference' : 'embed',
        rebuild: (image) => rebuilt.has(image),
        onProgress: (m) => {
          if (m.startsWith('building') || m.startsWith('built')) console.error(`  ${m}`);
        },
      });
      await uploadPackage(api, built.file, true);
      const entry = await installAndWait(api, built.meta.name, { version: built.meta.version, wait: true, quiet: true });
      const relaunched = built.manifest.kind === 'application' ? await relaunch(api, built.meta.name) : [];
      // Editors' and sed's temporary files are gone by now: name what is there.
      const shown = changed.filter((f) => existsSync(join(root, f)));
      if (shown.length > 0) changed = shown;
      const what = first ? 'installed' : `${changed.slice(0, 3).join(', ')}${changed.length > 3 ? ', ...' : ''} changed: ${rebuilt.size ? `rebuilt ${[...rebuilt].join(', ')}, ` : ''}reinstalled`;
      const provides = built.manifest.kind === 'application'
        ? (relaunched.length ? `relaunched ${relaunched.join(', ')}` : `launch it with: tessera app launch ${entry.name}`)
        : `workflows: ${entry.workflows.join(', ') || '-'}`;
      console.log(`[${clock()}] ${what} ${entry.name}@${entry.installed?.version} in ${((Date.now() - started) / 1000).toFixed(2)} s; ${provides}`);
    } catch (err) {
      console.log(`[${clock()}] error: ${describe(err, root)}`);
      if (err instanceof TesseraError) for (const d of err.details) console.log(`  ${d.where}: ${d.message}`);
      console.log(`  (still watching; save a fix to try again)`);
    }
    first = false;
  };

  console.error(`watching ${root} (Ctrl-C to stop)`);
  await cycle([]);
  const onChange = (rel: string): void => {
    if (IGNORED.test(rel)) return;
    pending.add(rel);
    clearTimeout(timer);
    // Editors write a file in several steps: wait for the saves to settle.
    timer = setTimeout(() => {
      const changed = [...pending].sort();
      pending = new Set();
      running = running.then(() => cycle(changed));
    }, 60);
  };
  const watcher = watchTree(root, onChange);
  await new Promise<void>((done) => {
    const stop = (): void => {
      watcher.close();
      clearTimeout(timer);
      void running.then(done);
    };
    o.signal?.addEventListener('abort', stop, { once: true });
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

/** Instances of an application that run (or failed) start again on the version just installed, with their parameters. */
async function relaunch(api: ApiClient, extension: string): Promise<string[]> {
  const { items } = await api.get<AnswerOf<typeof applicationRoutes.list, 200>>('/api/applications');
  const names: string[] = [];
  for (const a of items.filter((i) => i.extension === extension && i.state !== 'stopped')) {
    await api.delete(`/api/applications/${encodeURIComponent(a.name)}`, { project: a.project });
    await api.post('/api/applications', { extension, project: a.project, ...(a.name !== extension ? { name: a.name } : {}), params: a.params } satisfies LaunchApp);
    names.push(a.project === 'admin' ? a.name : `${a.project}/${a.name}`);
  }
  return names;
}

/**
 * Watches every folder of the tree, each with its own watcher: a watcher on a folder
 * sees files replaced by rename (how editors and sed save), where Node 20's recursive
 * watch on Linux loses a file once its inode changes. New folders are watched as they appear.
 */
function watchTree(root: string, onChange: (rel: string) => void): { close: () => void } {
  const watchers = new Map<string, FSWatcher>();
  const add = (dir: string): void => {
    const rel = relative(root, dir).split(sep).join('/');
    if (watchers.has(dir) || (rel && IGNORED.test(rel))) return;
    try {
      const w = watch(dir, (_event, file) => {
        if (!file) return;
        const path = join(dir, file.toString());
        const relPath = relative(root, path).split(sep).join('/');
        if (!existsSync(path)) {
          watchers.get(path)?.close();
          watchers.delete(path);
        } else if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
          add(path);
        }
        onChange(relPath);
      });
      w.on('error', () => {
        w.close();
        watchers.delete(dir);
      });
      watchers.set(dir, w);
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) add(join(dir, e.name));
    } catch {
      // the folder went away while we looked
    }
  };
  add(root);
  return { close: () => [...watchers.values()].forEach((w) => w.close()) };
}

/** An error for the developer: file and line first when the error knows them (a TypeScript syntax error, a DAG spec problem). */
function describe(err: unknown, root: string): string {
  const e = err as Error & { errors?: { text: string; location?: { file: string; line: number; column: number } }[] };
  if (Array.isArray(e.errors) && e.errors[0]?.location) {
    const { file, line, column } = e.errors[0].location;
    return `${relative(root, resolve(root, file)) || file}:${line}:${column}: ${e.errors[0].text}`;
  }
  return (e.message ?? String(err)).split(join(root, '')).join('').replace(/^\//, '');
}
