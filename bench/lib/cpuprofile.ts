import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Where a function lives, coarsely: enough to tell the DB from spawn from HTTP. */
export function category(url: string, name: string): string {
  if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') return name;
  if (url.includes('better-sqlite3')) return 'SQLite (better-sqlite3)';
  if (url.includes('/kysely/')) return 'Kysely (query building)';
  if (url.includes('fastify') || url.includes('find-my-way') || url.includes('light-my-request') || url.includes('avvio')) return 'Fastify';
  if (url.includes('node:internal/child_process') || url.includes('node:child_process')) return 'child_process (spawn)';
  if (url.includes('packages/engine/')) return 'engine';
  if (url.includes('packages/server/')) return 'server';
  if (url.includes('packages/')) return 'other packages';
  if (url.includes('tsx') || url.includes('esbuild')) return 'tsx loader';
  if (url.startsWith('node:')) return 'node internals';
  if (url === '') return 'native / builtins';
  return 'other';
}

function shortUrl(url: string): string {
  const i = url.indexOf('/packages/');
  if (i >= 0) return url.slice(i + 1);
  const j = url.lastIndexOf('/node_modules/');
  if (j >= 0) return url.slice(j + '/node_modules/'.length);
  return url.replace(/^file:\/\//, '');
}

/**
 * Self time by category and by function, and inclusive time of engine and
 * server functions (a function's own time plus its callees'), from a
 * `node --cpu-prof` profile.
 */
export function summarizeProfile(file: string, top = 15): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  // No line numbers: tsx hands V8 transpiled code, so they would not match the sources.
  const key = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'} ${shortUrl(n.callFrame.url)}`;
  const selfByKey = new Map<string, number>();
  const selfByCategory = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const parents = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parents.set(c, n.id);
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    selfByKey.set(key(n), (selfByKey.get(key(n)) ?? 0) + us);
    const cat = category(n.callFrame.url, n.callFrame.functionName);
    selfByCategory.set(cat, (selfByCategory.get(cat) ?? 0) + us);
    // Each sample counts once for every distinct function on its stack, however deep the recursion.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parents.get(cur)) {
      const k = key(byId.get(cur)!);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
  const total = p.endTime - p.startTime;
  const busy = total - (selfByCategory.get('(idle)') ?? 0);
  const line = (label: string, us: number): string => `  ${(us / 1000).toFixed(0).padStart(7)} ms ${((us / busy) * 100).toFixed(1).padStart(5)}%  ${label}`;
  const sorted = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]);
  return [
    `profile ${(total / 1e6).toFixed(1)} s, busy (not idle) ${(busy / 1e6).toFixed(1)} s; percentages of busy time`,
    'self time by category:',
    ...sorted(selfByCategory).filter(([k]) => k !== '(idle)').map(([k, v]) => line(k, v)),
    `self time, top ${top} functions:`,
    ...sorted(selfByKey).filter(([k]) => !k.startsWith('(idle)')).slice(0, top).map(([k, v]) => line(k, v)),
    `inclusive time, top ${top} Tessera functions (packages/):`,
    ...sorted(inclusive).filter(([k]) => k.includes(' packages/')).slice(0, top).map(([k, v]) => line(k, v)),
  ].join('\n');
}
