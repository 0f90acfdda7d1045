/**
 * Application runtime figures:
 *
 * 1. Proxy: requests per second and latency of a small response (hello-world-app's
 *    /healthz, 3 bytes) through Tessera's subpath proxy, through nginx configured as a
 *    reverse proxy for the same app process, and straight to the app (the floor), with
 *    wrk on loopback. Systems take turns, `--rounds` times. With each run, the CPU time
 *    per request of the proxy's processes (Tessera's server; nginx's master and worker)
 *    and of the app, from /proc: on a machine shared with other work, requests per
 *    second move with the load, CPU time per request much less. Tessera twice: with
 *    access control off (the app on the platform's port), and on (a second server: the app
 *    on its own host name on the apps' port, each request with a token, checked by the
 *    proxy's fast path).
 * 2. Launch: from POST /api/applications to the first 200 through the proxy, for
 *    hello-world-app on the process runner.
 *
 *   npx tsx bench/applications.ts [--duration 10] [--connections 32] [--rounds 3] [--launches 10]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
/** User and system CPU seconds a process and its threads have used. */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS;
  } catch {
    return 0;
  }
}
const childrenOf = (pid: number): number[] =>
  spawnSync('ps', ['--ppid', String(pid), '-o', 'pid='], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean).map(Number);
/** Children, their children, ...: a sandboxed app runs under bwrap. */
const descendantsOf = (pid: number): number[] => childrenOf(pid).flatMap((c) => [c, ...descendantsOf(c)]);
/** The app: the process under `server` that runs server.mjs. */
function appProcessOf(server: number): number {
  // The deepest: under the sandbox, bwrap's own processes name server.mjs in their arguments too.
  const pid = descendantsOf(server).findLast((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('server.mjs');
    } catch {
      return false;
    }
  });
  if (!pid) throw new Error('the app process was not found');
  return pid;
}

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
    launches: { type: 'string', default: '10' },
    port: { type: 'string', default: '18282' },
    'nginx-port': { type: 'string', default: '18283' },
  },
});
for (const tool of ['/usr/bin/wrk', '/usr/sbin/nginx']) {
  if (spawnSync(tool, ['-v']).error) throw new Error(`${tool} is missing: apt-get install wrk nginx-light`);
}
const loadBefore = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const root = await mkdtemp(join(tmpdir(), 'tessera-bench-apps-'));
const url = `http://127.0.0.1:${args.port}`;

async function call(method: string, path: string, body?: unknown, base = url, token?: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const headers: Record<string, string> = { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) };
  const res = await fetch(`${base}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
  return res.headers.get('content-type')?.includes('json') ? res.json() : res.text();
}

interface Run { rps: number; p50: number; p99: number; proxyUs: number; appUs: number }

/** wrk against the target, with the CPU microseconds per request of the proxy's and the app's processes. */
function wrk(target: string, proxyPids: number[], appPid: number, headers: string[] = []): Run {
  const cpu0 = proxyPids.reduce((s, p) => s + cpuSeconds(p), 0);
  const app0 = cpuSeconds(appPid);
  const r = spawnSync('/usr/bin/wrk', ['-t2', `-c${args.connections}`, `-d${args.duration}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), target], { encoding: 'utf8' });
  const cpu = proxyPids.reduce((s, p) => s + cpuSeconds(p), 0) - cpu0;
  const app = cpuSeconds(appPid) - app0;
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
  const total = Number(/(\d+) requests in/.exec(r.stdout)?.[1]);
  const ms = (label: string): number => {
    const m = new RegExp(`${label}%\\s+([\\d.]+)(us|ms|s)`).exec(r.stdout);
    if (!m) return Number.NaN;
    return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
  };
  if (/Non-2xx/.test(r.stdout)) throw new Error(`wrk saw errors against ${target}:\n${r.stdout}`);
  return { rps, p50: ms(' 50'), p99: ms(' 99'), proxyUs: (cpu / total) * 1e6, appUs: (app / total) * 1e6 };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const server: ChildProcess = spawn(process.execPath, [join(REPO, 'bin/tessera-server.mjs')], {
  cwd: REPO,
  env: { ...process.env, PORT: args.port, HOST: '127.0.0.1', TESSERA_HOME: join(root, 'home'), DICOM_PORT: 'off', TESSERA_LOG_LEVEL: 'warn', TESSERA_RUNNERS: 'process', TESSERA_DEFAULT_EXTENSIONS: 'none', TESSERA_AUTH: 'off' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
// The same with access control on: apps on their own port, each instance on a host name of its own.
const securedPort = Number(args.port) + 2;
const securedAppsPort = Number(args.port) + 3;
const securedUrl = `http://127.0.0.1:${securedPort}`;
const secured: ChildProcess = spawn(process.execPath, [join(REPO, 'bin/tessera-server.mjs')], {
  cwd: REPO,
  env: {
    ...process.env, PORT: String(securedPort), TESSERA_APPS_PORT: String(securedAppsPort), HOST: '127.0.0.1', TESSERA_HOME: join(root, 'home-secured'), XDG_STATE_HOME: join(root, 'state'),
    DICOM_PORT: 'off', TESSERA_LOG_LEVEL: 'warn', TESSERA_RUNNERS: 'process', TESSERA_DEFAULT_EXTENSIONS: 'none', TESSERA_AUTH: 'on',
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});
let nginx: ChildProcess | undefined;
const out: string[] = [];
try {
  for (const base of [url, securedUrl]) {
    for (let i = 0; !(await fetch(`${base}/api/health`).then((r) => r.ok, () => false)); i++) {
      if (i > 600) throw new Error(`the server at ${base} did not start`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await call('POST', '/api/extensions/hello-world-app/install?wait=true', {});
  // The admin token of the secured server's runtime file (a loopback server writes one, as Jupyter's do).
  const runtimeFile = join(root, 'state', 'tessera', 'servers', `${securedPort}.json`);
  for (let i = 0; !existsSync(runtimeFile); i++) {
    if (i > 100) throw new Error(`no runtime file at ${runtimeFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const token = (JSON.parse(readFileSync(runtimeFile, 'utf8')) as { token: string }).token;
  await call('POST', '/api/extensions/hello-world-app/install?wait=true', {}, securedUrl, token);

  // ------------------------------------------------------------------ launch
  const launchMs: number[] = [];
  for (let i = 0; i < Number(args.launches); i++) {
    const t = performance.now();
    const app = await call('POST', '/api/applications', { extension: 'hello-world-app', name: `launch-${i}` });
    for (;;) {
      const res = await fetch(`${url}${app.url}healthz`);
      if (res.status === 200) break;
      if (performance.now() - t > 30_000) throw new Error('launch took over 30 s');
      await new Promise((r) => setTimeout(r, 5));
    }
    launchMs.push(performance.now() - t);
    await call('DELETE', `/api/applications/launch-${i}`);
  }

  // ------------------------------------------------------------------ proxy
  const app = await call('POST', '/api/applications', { extension: 'hello-world-app', name: 'bench' });
  while ((await call('GET', '/api/applications/bench')).state !== 'running') await new Promise((r) => setTimeout(r, 50));
  const securedApp = await call('POST', '/api/applications', { extension: 'hello-world-app', name: 'bench' }, securedUrl, token);
  if (!securedApp.url) throw new Error(`could not launch on the secured server: ${JSON.stringify(securedApp)}`);
  while ((await call('GET', '/api/applications/bench', undefined, securedUrl, token)).state !== 'running') await new Promise((r) => setTimeout(r, 50));
  const securedHost = new URL(securedApp.url as string).host;
  const appPort = Number(/127\.0\.0\.1:(\d+)/.exec(await call('GET', '/api/applications/bench/logs'))?.[1]);
  const conf = join(root, 'nginx.conf');
  await writeFile(conf, `worker_processes 1;
daemon off;
pid ${join(root, 'nginx.pid')};
error_log ${join(root, 'nginx-error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream app { server 127.0.0.1:${appPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${args['nginx-port']};
    location /applications/ {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`);
  nginx = spawn('/usr/sbin/nginx', ['-c', conf, '-p', root], { stdio: ['ignore', 'ignore', 'inherit'] });
  await new Promise((r) => setTimeout(r, 500));
  const path = `${app.url}healthz`;
  // The app is the process under the server that runs server.mjs.
  const appPid = appProcessOf(server.pid!);
  const securedAppPid = appProcessOf(secured.pid!);
  const nginxPids = [nginx.pid!, ...childrenOf(nginx.pid!)];
  const targets: Record<string, [target: string, proxyPids: number[], appPid: number, headers: string[]]> = {
    'app directly (floor)': [`http://127.0.0.1:${appPort}${path}`, [], appPid, []],
    'nginx 1.22 (1 worker)': [`http://127.0.0.1:${args['nginx-port']}${path}`, nginxPids, appPid, []],
    'Tessera proxy': [`${url}${path}`, [server.pid!], appPid, []],
    'Tessera proxy, access control on': [`http://127.0.0.1:${securedAppsPort}${path}`, [secured.pid!], securedAppPid, [`Host: ${securedHost}`, `Authorization: Bearer ${token}`]],
  };
  const results: Record<string, Run[]> = {};
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const [name, [target, pids, appOf, headers]] of Object.entries(targets)) (results[name] ??= []).push(wrk(target, pids, appOf, headers));
  }
  const m = (name: string, k: keyof Run): number => median(results[name]!.map((r) => r[k]));
  const floorP99 = m('app directly (floor)', 'p99');
  out.push(`### Proxy: ${args.connections} connections, ${args.duration} s, wrk -t2, median of ${args.rounds} rounds`, '',
    '| | requests/s | p50 | p99 | p99 added over the app | throughput vs nginx | proxy CPU per request | app CPU per request |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const name of Object.keys(targets)) {
    const proxyCpu = targets[name]![1].length ? `${m(name, 'proxyUs').toFixed(1)} µs` : '-';
    out.push(`| ${name} | ${m(name, 'rps').toFixed(0)} | ${m(name, 'p50').toFixed(2)} ms | ${m(name, 'p99').toFixed(2)} ms | ${(m(name, 'p99') - floorP99).toFixed(2)} ms | ` +
      `${(m(name, 'rps') / m('nginx 1.22 (1 worker)', 'rps')).toFixed(2)}x | ${proxyCpu} | ${m(name, 'appUs').toFixed(1)} µs |`);
  }
  out.push('', 'Each round (requests/s; added p99):');
  for (const name of Object.keys(targets)) {
    out.push(`- ${name}: ${results[name]!.map((r) => `${r.rps.toFixed(0)}; ${(r.p99 - floorP99).toFixed(2)} ms`).join(' | ')}`);
  }
  out.push(`- load average before and after: ${loadBefore} / ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  out.push(`- access control on / off: ${(m('Tessera proxy, access control on', 'rps') / m('Tessera proxy', 'rps')).toFixed(3)}x requests/s, ` +
    `${(m('Tessera proxy, access control on', 'proxyUs') / m('Tessera proxy', 'proxyUs')).toFixed(3)}x proxy CPU per request (${securedHost}, a token per request)`);
  out.push('', `### Launch: POST /api/applications to the first 200 through the proxy (hello-world-app, process runner), ${launchMs.length} launches`, '',
    '| median | slowest |', '| ---: | ---: |', `| **${median(launchMs).toFixed(0)} ms** | ${Math.max(...launchMs).toFixed(0)} ms |`, '');
} finally {
  nginx?.kill('SIGTERM');
  server.kill('SIGTERM');
  secured.kill('SIGTERM');
  await Promise.all([server, secured].map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
  await rm(root, { recursive: true, force: true });
}
console.log(out.join('\n'));
