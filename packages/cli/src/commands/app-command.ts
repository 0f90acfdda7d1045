import type { AnswerOf, AppInstance, applicationRoutes, LaunchApp } from '@tessera/api';
import { CliError, type ApiClient } from '../api-client.ts';
import { printJson, table, truncate } from '../output.ts';
import { parseParams } from './ext-command.ts';

/**
 * Where a person opens an instance: its path on the platform, which signs the browser in to
 * the instance's own host (with access control on, `url` is that host's absolute URL).
 */
export function openUrl(baseUrl: string, url: string): string {
  const u = new URL(url, `${baseUrl}/`);
  return `${baseUrl}${u.pathname}${u.search}`;
}

/** `tessera app launch`: launches an instance and waits until it serves (or says why it does not). */
export async function appLaunchCommand(api: ApiClient, extension: string, o: { project: string; name?: string; param: string[]; wait: boolean; json?: boolean }): Promise<number> {
  const started = Date.now();
  let app = await api.post<AppInstance>('/api/applications', { extension, project: o.project, ...(o.name ? { name: o.name } : {}), params: parseParams(o.param) } satisfies LaunchApp);
  while (o.wait && app.state === 'starting') {
    await new Promise((r) => setTimeout(r, 100));
    app = await api.get<AppInstance>(`/api/applications/${encodeURIComponent(app.name)}`, { project: o.project });
  }
  if (o.json) printJson(app);
  const url = openUrl(api.baseUrl, app.url);
  if (app.state === 'failed') throw new CliError(`${app.name} failed to start: ${app.reason ?? 'no reason given'}`);
  if (!o.json) console.log(app.state === 'running' ? `${app.name} runs at ${url} (started in ${((Date.now() - started) / 1000).toFixed(1)} s)` : `${app.name}: ${app.state}; it will serve at ${url}`);
  return 0;
}

export async function appListCommand(api: ApiClient, o: { project?: string; json?: boolean }): Promise<number> {
  const { items } = await api.get<AnswerOf<typeof applicationRoutes.list, 200>>('/api/applications', { project: o.project });
  if (o.json) {
    printJson(items);
    return 0;
  }
  console.log(table(['NAME', 'EXTENSION', 'STATE', 'PROJECT', 'URL'], items.map((a) => [a.name, `${a.extension}@${a.version}`, a.state, a.project, openUrl(api.baseUrl, a.url)])));
  for (const a of items.filter((x) => x.state === 'failed' && x.reason)) console.error(`${a.name}: ${truncate(a.reason!.split('\n')[0], 200)}`);
  return 0;
}

export async function appLogsCommand(api: ApiClient, name: string, o: { project: string; lines: number }): Promise<number> {
  const res = await api.download(`/api/applications/${encodeURIComponent(name)}/logs`, { project: o.project, lines: o.lines });
  process.stdout.write(await res.text());
  return 0;
}

export async function appStopCommand(api: ApiClient, name: string, o: { project: string }): Promise<number> {
  const app = await api.delete<AppInstance>(`/api/applications/${encodeURIComponent(name)}`, { project: o.project });
  console.log(`${app.name}: ${app.state}`);
  return 0;
}
