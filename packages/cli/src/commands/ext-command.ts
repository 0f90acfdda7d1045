import { createReadStream, existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { DeletedExtensionVersion, Extension, ExtensionCatalog, ExtensionPackage, Health, InstallExtension } from '@tessera/api';
import { buildPackage, dockerSocketPath, type BuiltPackage } from '@tessera/extension-packages';
import { ApiClient, CliError } from '../api-client.ts';
import { canAsk, confirm, type Prompt } from '../confirm.ts';
import { bytes, printJson, table, truncate } from '../output.ts';
import { ProgressLine } from '../progress.ts';

export async function extListCommand(api: ApiClient, o: { json?: boolean; kind?: string; keyword?: string; installed?: boolean }): Promise<number> {
  const { items, problems } = await api.get<ExtensionCatalog>('/api/extensions', {
    kind: o.kind,
    keyword: o.keyword,
    state: o.installed ? 'installed,installing,error' : undefined,
  });
  if (o.json) {
    printJson(items);
    return 0;
  }
  console.log(table(['NAME', 'KIND', 'STATE', 'INSTALLED', 'VERSIONS', 'KEYWORDS', 'TITLE'], items.map((e) => [
    e.name,
    e.kind,
    e.state.replace('_', ' '),
    e.installed ? `${e.installed.version}${e.installed.source === 'folder' ? ' (linked)' : ''}` : null,
    e.versions.map((v) => v.version).join(', '),
    e.keywords.join(',') || null,
    truncate(e.title, 50),
  ])));
  for (const e of items.filter((x) => x.error)) console.error(`${e.name}: ${e.error}`);
  for (const p of problems) console.error(`warning: ${p.dir} is not in the catalog: ${p.message}`);
  return 0;
}

/** `--param key=value` pairs; values stay strings (the server types them by the manifest). */
export function parseParams(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError(`--param "${pair}" must look like key=value`, { exitCode: 2 });
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export interface InstallOptions {
  param: string[];
  version?: string;
  wait: boolean;
  json?: boolean;
  quiet?: boolean;
}

/**
 * `tessera ext install <name[@version]|folder|archive>`: a folder is built into a package
 * first, a package is uploaded, then the extension is installed and the command waits
 * until its workflows are available (or says why not).
 */
export async function extInstallCommand(api: ApiClient, target: string, o: InstallOptions): Promise<number> {
  const params = parseParams(o.param);
  let name: string;
  let version: string | undefined;
  const path = resolve(target);
  if (existsSync(path)) {
    const uploaded = statSync(path).isDirectory() ? await buildAndUpload(api, path, o.quiet) : await uploadPackage(api, path, o.quiet);
    ({ name, version } = uploaded);
  } else if (/^[a-z0-9][a-z0-9-]*(@[0-9A-Za-z.+-]+)?$/.test(target)) {
    [name, version] = target.split('@') as [string, string | undefined];
  } else {
    throw new CliError(`"${target}" is neither a folder, a package file, nor an extension name (name or name@version); \`tessera ext list\` shows the catalog`, { exitCode: 2 });
  }
  const entry = await installAndWait(api, name, { version: version ?? o.version, params, wait: o.wait, quiet: o.quiet });
  if (o.json) printJson(entry);
  return entry.state === 'error' || (entry.error && o.wait) ? 1 : 0;
}

/** Starts an install and (unless !wait) follows it to its end with a progress line. */
export async function installAndWait(api: ApiClient, name: string, o: { version?: string; params?: Record<string, string>; wait: boolean; quiet?: boolean }): Promise<Extension> {
  const started = Date.now();
  let entry = await api.post<Extension>(`/api/extensions/${encodeURIComponent(name)}/install`, {
    ...(o.version ? { version: o.version } : {}),
    ...(o.params && Object.keys(o.params).length ? { params: o.params } : {}),
  } satisfies InstallExtension);
  if (!o.wait) {
    if (!o.quiet) console.log(`${name}: ${entry.state}${entry.progress ? ` (${entry.progress})` : ''}; see its state with: tessera ext list`);
    return entry;
  }
  const line = new ProgressLine(() => `${name}: ${entry.progress ?? entry.state} (${((Date.now() - started) / 1000).toFixed(0)} s)`, { quiet: o.quiet });
  while (entry.state === 'installing') {
    await new Promise((r) => setTimeout(r, 50));
    entry = await api.get<Extension>(`/api/extensions/${encodeURIComponent(name)}`);
    line.tick();
  }
  line.clear();
  const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  if (entry.state === 'installed' && !entry.error) {
    if (!o.quiet) {
      console.log(`installed ${name}@${entry.installed!.version} in ${took}` +
        `${entry.workflows.length ? `; workflows: ${entry.workflows.join(', ')} (run one with: tessera run ${entry.workflows[0]})` : ''}`);
    }
    return entry;
  }
  throw new CliError(`installing ${name} failed: ${entry.error ?? entry.state}`);
}

/** Builds a folder into its package and uploads it. Images are referenced, not embedded, when the server uses this machine's Docker engine. */
export async function buildAndUpload(api: ApiClient, folder: string, quiet = false): Promise<{ name: string; version: string; built: BuiltPackage }> {
  const log = (m: string): void => {
    if (!quiet) console.error(m);
  };
  const sameEngine = await serverSharesDocker(api);
  const built = await buildPackage(folder, { images: sameEngine ? 'reference' : 'embed', onProgress: log });
  log(`built ${built.file} (${bytes(built.bytes)})`);
  const uploaded = await uploadPackage(api, built.file, true);
  return { ...uploaded, built };
}

/** Whether the server's Docker engine is this machine's (same socket, server on loopback): then images need not travel inside the package. */
export async function serverSharesDocker(api: ApiClient): Promise<boolean> {
  const url = new URL(api.baseUrl);
  if (!['localhost', '127.0.0.1', '[::1]'].includes(url.hostname)) return false;
  const health = await api.get<Health>('/api/health');
  return Boolean(health.docker_socket) && health.docker_socket === dockerSocketPath();
}

export async function uploadPackage(api: ApiClient, file: string, quiet = false): Promise<{ name: string; version: string }> {
  const res = await api.send('POST', '/api/extensions/packages', {}, {
    raw: createReadStream(file) as unknown as AsyncIterable<Uint8Array>,
    headers: { 'content-type': 'application/gzip', 'content-length': String(statSync(file).size) },
  });
  if (!res.ok) await api.fail(res, 'POST', '/api/extensions/packages');
  const body = (await res.json()) as ExtensionPackage;
  if (!quiet) console.error(`uploaded ${body.name}@${body.version} (${bytes(body.bytes)})${body.replaced ? ', replacing the package of the same version' : ''}`);
  return body;
}

export async function extUninstallCommand(api: ApiClient, name: string): Promise<number> {
  await api.delete(`/api/extensions/${encodeURIComponent(name)}`);
  console.log(`uninstalled ${name}`);
  return 0;
}

/**
 * `tessera ext delete <name>@<version>`: deletes an uploaded package version from the
 * catalog, its files with it. Asks first on a terminal; without one, --yes is required.
 * Exits 1 when the server refuses (installed, built in, unknown) or the answer is no.
 */
export async function extDeleteCommand(api: ApiClient, target: string, o: { yes?: boolean; json?: boolean }, prompt?: Prompt): Promise<number> {
  const at = target.lastIndexOf('@');
  const name = at > 0 ? target.slice(0, at) : '';
  const version = at > 0 ? target.slice(at + 1) : '';
  if (!name || !version) {
    throw new CliError(`name the version to delete as <name>@<version> (got "${target}"); \`tessera ext list\` shows each extension's versions`, { exitCode: 2 });
  }
  if (!o.yes) {
    if (!canAsk(prompt)) {
      throw new CliError(`refusing to delete ${name}@${version} without confirmation: there is no terminal to ask on. Add --yes to delete it.`, { exitCode: 2 });
    }
    const entry = await api.get<Extension>(`/api/extensions/${encodeURIComponent(name)}`);
    const v = entry.versions.find((x) => x.version === version && x.source === 'package');
    const uploaded = v?.uploaded_at ? `, uploaded ${v.uploaded_at}` : '';
    console.error(`Deleting ${name}@${version}${v?.bytes ? ` (${bytes(v.bytes)}${uploaded})` : ''} removes the package and its files from the catalog; it cannot be undone (upload the package again to get it back).`);
    if (!(await confirm(`Delete ${name}@${version}?`, prompt))) {
      console.error('nothing deleted');
      return 1;
    }
  }
  const deleted = await api.delete<DeletedExtensionVersion>(`/api/extensions/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`);
  if (o.json) printJson(deleted);
  else console.log(`deleted ${name}@${version} (${bytes(deleted.bytes)}) from the catalog${deleted.removed ? '' : '; its files are removed when the runs still using that version end'}`);
  return 0;
}

export async function extBuildCommand(folder: string, o: { out?: string; images: boolean; json?: boolean }): Promise<number> {
  const built = await buildPackage(resolve(folder), { out: o.out, images: o.images ? 'embed' : 'reference', onProgress: (m) => console.error(m) });
  if (o.json) {
    printJson({ file: built.file, bytes: built.bytes, sha256: built.sha256, name: built.meta.name, version: built.meta.version, workflows: built.workflows, images: built.meta.images,
      embedded: built.embedded, referenced: built.referenced });
    return 0;
  }
  console.log(`${built.file}  ${bytes(built.bytes)}  sha256 ${built.sha256}`);
  if (!o.images && built.meta.images.length > 0) console.error('note: built without its images (--no-images); it installs only where this Docker engine holds them');
  return 0;
}
