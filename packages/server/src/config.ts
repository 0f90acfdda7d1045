import { readFileSync } from 'node:fs';
import { homedir, totalmem } from 'node:os';
import { inspect } from 'node:util';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDockerHost, TesseraError } from '@tessera/model';
import { DEFAULT_SHM_MB } from '@tessera/engine';

/** The server's configuration, read once from the environment at start and validated. */
export interface ServerConfig {
  /** HTTP port (PORT, default 8080; 0 picks a free port). */
  port: number;
  /** Address to bind (HOST, default 127.0.0.1: nothing is exposed until login exists). */
  host: string;
  /** All state: DB, workflow dirs, logs, user extensions (TESSERA_HOME, default ./.tessera). */
  home: string;
  /** Linked folders: their sub-folders are extensions loaded as they are on disk, always installed (TESSERA_EXTENSIONS_DIRS, ":"-separated; default none). */
  extensionRoots: string[];
  /** The built-in collection of the catalog (TESSERA_BUILTIN_EXTENSIONS_DIR, default the repository's extensions/). */
  builtinExtensionsDir: string;
  /** Built-in extensions installed at the first start (TESSERA_DEFAULT_EXTENSIONS, comma-separated or "none"; default hello-world,collect-metadata,delete-series). */
  defaultExtensions: string[];
  /** Largest extension package accepted, in MB (TESSERA_EXTENSION_MAX_PACKAGE_MB, default 2048: images ride inside). */
  extensionMaxPackageMb: number;
  /** Tasks running at once (TESSERA_PARALLELISM, default 16). */
  parallelism: number;
  /** RAM pool in MB (TESSERA_RAM_POOL_MB, default 80% of the machine's memory). */
  ramPoolMb: number;
  /** GPU memory pool in MB (TESSERA_GPU_POOL_MB, default 0: no GPU). */
  gpuPoolMb: number;
  /** Size of /dev/shm in each task's container, in MB (TESSERA_SHM_MB, default 1024). */
  shmMb: number;
  /** Days a workflow dir is kept after a successful or canceled run (TESSERA_RETENTION_DAYS, default 7). */
  retentionDays: number;
  /** Days a failed run's workflow dir is kept (TESSERA_FAILED_RETENTION_DAYS, default 30). */
  failedRetentionDays: number;
  /** `normal` or `full` (fsync every commit) (TESSERA_DB_DURABILITY, default normal). */
  dbDurability: 'normal' | 'full';
  /** Which runners to use (TESSERA_RUNNERS: "auto" (default), or a list such as "process" or "docker,process"). */
  runners: 'auto' | ('process' | 'docker')[];
  /** Docker engine socket (DOCKER_HOST unix://..., default /var/run/docker.sock). */
  dockerSocket: string | undefined;
  /**
   * HTTPS from a certificate and its private key, PEM files (TESSERA_TLS_CERT and
   * TESSERA_TLS_KEY, both or neither; default none: plain HTTP). Read and checked at start
   * (http/tls.ts).
   */
  tls: { certFile: string; keyFile: string } | undefined;
  /** Public URL of this server given to tasks as TESSERA_API_URL (TESSERA_PUBLIC_URL, default http(s)://<host>:<port>). */
  publicUrl: string | undefined;
  /** Host names (host or host:port) answered besides loopback, the host of TESSERA_PUBLIC_URL and the bound address (TESSERA_ALLOWED_HOSTS, comma-separated; default none). */
  allowedHosts: string[];
  /** Origins (scheme://host[:port]) whose pages may change state besides the server's own (TESSERA_ALLOWED_ORIGINS, comma-separated; default none). */
  allowedOrigins: string[];
  /** Log level for the HTTP server (TESSERA_LOG_LEVEL: info, warn, error, silent; default info). */
  logLevel: 'info' | 'warn' | 'error' | 'silent';
  /** DICOM C-STORE/C-ECHO port on HOST (DICOM_PORT, default 11112; 0 picks a free port; "off" disables the receiver). */
  dicomPort: number | 'off';
  /** Our DICOM AE title (TESSERA_DICOM_AE, default TESSERA). */
  dicomAeTitle: string;
  /** fsync each received file and its folder before acknowledging it (TESSERA_DICOM_FSYNC, default false). */
  dicomFsync: boolean;
  /** A SOP Instance UID the project already holds: keep the first copy, replace it, or reject the new one (TESSERA_DICOM_DUPLICATES, default keep). */
  dicomDuplicates: 'keep' | 'replace' | 'reject';
  /** Seconds without a new instance after which a series counts as complete (TESSERA_SERIES_QUIET_SECONDS, default 10). */
  seriesQuietSeconds: number;
  /** Largest single instance accepted, in MB (TESSERA_DICOM_MAX_INSTANCE_MB, default 1024). */
  dicomMaxInstanceMb: number;
  /** Largest upload (a STOW-RS body, a .zip, a file) in MB (TESSERA_DICOM_MAX_UPLOAD_MB, default 4096). */
  dicomMaxUploadMb: number;
  /** DICOM associations open at once; past it A-ASSOCIATE-RJ, transient (TESSERA_DICOM_MAX_ASSOCIATIONS, default 32). */
  dicomMaxAssociations: number;
  /** Dataset bytes one association holds in memory before spooling to disk, in MB (TESSERA_DICOM_ASSOCIATION_MEMORY_MB, default 16). */
  dicomAssociationMemoryMb: number;
  /** An association that sends nothing for this long while owed nothing is aborted, in seconds (TESSERA_DICOM_IDLE_TIMEOUT_SECONDS, default 60). */
  dicomIdleTimeoutSeconds: number;
  /** Every project refuses a C-STORE association from an address not on its list of allowed senders (TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS=1; default off: a project without a list takes anyone). */
  dicomRefuseUnknownSenders: boolean;
  /** Connections open at once; one more is closed as it arrives (TESSERA_HTTP_MAX_CONNECTIONS, default 512; 0: no cap). */
  httpMaxConnections: number;
  /** Seconds a client has to send a request's head (TESSERA_HTTP_HEADERS_TIMEOUT_SECONDS, default 60). */
  httpHeadersTimeoutSeconds: number;
  /** Seconds without a byte while a request body is read, or while an answer waits on the client, before the connection is closed (TESSERA_HTTP_IDLE_TIMEOUT_SECONDS, default 60; 0: off). */
  httpIdleTimeoutSeconds: number;
  /** Slowest request body, in KB/s averaged over the window below (TESSERA_HTTP_MIN_BODY_RATE_KB, default 1; 0: off). */
  httpMinBodyRateKb: number;
  /** The window of that average (TESSERA_HTTP_MIN_BODY_RATE_WINDOW_SECONDS, default 60). */
  httpMinBodyRateWindowSeconds: number;
  /**
   * Check every answer against its route's contract and answer 500 when one breaks it
   * (TESSERA_CHECK_ANSWERS=1; default off: it costs a validation per answer). The tests turn it on.
   */
  checkAnswers: boolean;
  /**
   * Access control (TESSERA_AUTH, default on): anonymous requests get 401 except health and
   * signing in. `off` is for one user on a loopback bind only; the Host and Origin checks stay on.
   */
  auth: 'on' | 'off';
  /** Signing in at an OpenID Connect issuer (TESSERA_OIDC_*; undefined when TESSERA_OIDC_ISSUER is not set). */
  oidc: OidcConfig | undefined;
  /**
   * The port application instances are served on, their own origin, so an app's scripts
   * cannot act on the platform's API as the signed-in user (TESSERA_APPS_PORT; default PORT+1
   * with access control on, `same` (the platform's port) with it off).
   */
  appsPort: number | 'same';
  /**
   * The applications' origin as users reach them (TESSERA_APPS_PUBLIC_URL): with `{instance}`
   * in its host, a host name per instance (`https://{instance}.apps.example.org`); without,
   * one origin for all. Default: `http://{instance}.localhost:<apps port>` when the platform
   * is reached on loopback, else `http://<host>:<apps port>` (app-origins.ts).
   */
  appsPublicUrl: string | undefined;
  /**
   * How process tasks and applications are isolated (TESSERA_SANDBOX): `auto` (default)
   * bubblewrap when it is installed and works here, `bwrap` bubblewrap or no start, `off`
   * none. See Sandboxing in docs/guides/operations.md.
   */
  sandbox: 'auto' | 'bwrap' | 'off';
  /** The admin's explicit permission to run process tasks and applications without a sandbox while access control is on (TESSERA_ALLOW_UNSANDBOXED=1). */
  allowUnsandboxed: boolean;
  /**
   * What starts local processes (TESSERA_LAUNCHER): `auto` (default) the native launcher,
   * built with the system's C compiler, or the Node launcher when it cannot be built;
   * `native` the native one or no start; `node` the Node one (ADR 17).
   */
  launcher: 'auto' | 'native' | 'node';
  /** Where a loopback server writes its runtime file `servers/<port>.json` (XDG_STATE_HOME/tessera, default ~/.local/state/tessera). */
  stateDir: string;
  /** Not from the environment (tests set them): the event stream's heartbeat (default 15 s) and unread-bytes limit per client (default 1 MiB). */
  eventsHeartbeatMs?: number;
  eventsMaxBufferBytes?: number;
  /** How long a client may stay over eventsMaxBufferBytes unread (default 10 s). */
  eventsDrainMs?: number;
  /** Not from the environment: how often /api/system's folder sizes are walked again at most (default 60 s). */
  diskUsageMaxAgeMs?: number;
}

/** A value that must never be printed: JSON, `String()` and `util.inspect` (so logs) show `[secret]`. */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '[secret]';
  }

  toJSON(): string {
    return '[secret]';
  }

  [inspect.custom](): string {
    return '[secret]';
  }
}

/** Signing in at an OpenID Connect issuer (auth/oidc.ts; docs/guides/operations.md, OpenID Connect). */
export interface OidcConfig {
  /** The issuer identifier (TESSERA_OIDC_ISSUER), e.g. https://keycloak.example.org/realms/kaapana: https, or http on a loopback address. */
  issuer: string;
  /** TESSERA_OIDC_CLIENT_ID. */
  clientId: string;
  /** TESSERA_OIDC_CLIENT_SECRET, or the content of TESSERA_OIDC_CLIENT_SECRET_FILE (a trailing newline dropped). */
  clientSecret: Secret;
  /** What the sign-in page's button says (TESSERA_OIDC_NAME, default "Single sign-on"). */
  name: string;
  /** Scopes asked for (TESSERA_OIDC_SCOPES, space- or comma-separated; default "openid profile email"; must hold openid). */
  scopes: string[];
  /** The claim holding groups or roles (TESSERA_OIDC_ROLES_CLAIM, default groups; a dotted path such as realm_access.roles works). */
  rolesClaim: string;
  /** Values of that claim that make the user a platform admin (TESSERA_OIDC_ADMIN_VALUES, comma-separated, default tessera-admin); empty ("none"): admins are chosen in Tessera only. */
  adminValues: string[];
  /** Values of that claim that make the user a member of a project: named groups `project` and `role` (TESSERA_OIDC_PROJECT_ROLE_PATTERN). */
  projectRolePattern: RegExp;
}

/** Keycloak's groups look like "/tessera/lab/scientist" (full path); a realm role may be "tessera/lab/scientist". */
export const DEFAULT_OIDC_PROJECT_ROLE_PATTERN = '^/?tessera/(?<project>[a-z0-9-]+)/(?<role>scientist|principal-investigator)$';

/** The OpenID Connect settings, when TESSERA_OIDC_ISSUER (or another of the client's variables) is set; problems are pushed, never the secret. */
function oidcConfig(env: NodeJS.ProcessEnv, problems: string[]): OidcConfig | undefined {
  const { TESSERA_OIDC_ISSUER: issuer, TESSERA_OIDC_CLIENT_ID: clientId, TESSERA_OIDC_CLIENT_SECRET: secret, TESSERA_OIDC_CLIENT_SECRET_FILE: secretFile } = env;
  if (!issuer && !clientId && !secret && !secretFile) return undefined;
  const before = problems.length;
  if (!issuer) {
    problems.push('TESSERA_OIDC_ISSUER is not set, but TESSERA_OIDC_CLIENT_ID or its secret is: set the issuer URL (for Keycloak https://<host>/realms/<realm>) or remove the TESSERA_OIDC_* variables');
  } else {
    let url: URL | undefined;
    try {
      url = new URL(issuer);
    } catch {
      problems.push(`TESSERA_OIDC_ISSUER="${issuer}" is not a URL such as https://keycloak.example.org/realms/kaapana`);
    }
    if (url && url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
      problems.push(`TESSERA_OIDC_ISSUER="${issuer}" must be an https URL (http only on a loopback address such as http://127.0.0.1:8081, for development)`);
    } else if (url && (url.search || url.hash || url.username || url.password)) {
      problems.push(`TESSERA_OIDC_ISSUER="${issuer}" must be the issuer identifier alone: no query, fragment or credentials`);
    }
  }
  if (!clientId) problems.push('TESSERA_OIDC_CLIENT_ID is not set: the client id registered at the issuer (for Keycloak the client\'s "Client ID") is needed with TESSERA_OIDC_ISSUER');
  let clientSecret: string | undefined;
  if (secret && secretFile) {
    problems.push('TESSERA_OIDC_CLIENT_SECRET and TESSERA_OIDC_CLIENT_SECRET_FILE are both set: set one of them');
  } else if (secretFile) {
    try {
      clientSecret = readFileSync(secretFile, 'utf8').replace(/\r?\n$/, '');
      if (!clientSecret) problems.push(`TESSERA_OIDC_CLIENT_SECRET_FILE="${secretFile}" is empty: it must hold the client secret`);
    } catch (err) {
      problems.push(`TESSERA_OIDC_CLIENT_SECRET_FILE="${secretFile}" cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): it must be a file this server may read, holding the client secret`);
    }
  } else if (secret) {
    clientSecret = secret;
  } else {
    problems.push('TESSERA_OIDC_CLIENT_SECRET (or TESSERA_OIDC_CLIENT_SECRET_FILE) is not set: the confidential client\'s secret (for Keycloak: the client\'s Credentials tab) is needed with TESSERA_OIDC_ISSUER');
  }
  const scopes = (env.TESSERA_OIDC_SCOPES || 'openid profile email').split(/[\s,]+/).filter(Boolean);
  if (!scopes.includes('openid')) problems.push(`TESSERA_OIDC_SCOPES="${env.TESSERA_OIDC_SCOPES}" must include openid`);
  const rolesClaim = (env.TESSERA_OIDC_ROLES_CLAIM || 'groups').trim();
  const adminRaw = env.TESSERA_OIDC_ADMIN_VALUES ?? 'tessera-admin';
  const adminValues = adminRaw.trim() === 'none' ? [] : adminRaw.split(',').map((v) => v.trim()).filter(Boolean);
  const patternRaw = env.TESSERA_OIDC_PROJECT_ROLE_PATTERN || DEFAULT_OIDC_PROJECT_ROLE_PATTERN;
  let projectRolePattern = new RegExp(DEFAULT_OIDC_PROJECT_ROLE_PATTERN);
  try {
    projectRolePattern = new RegExp(patternRaw);
    if (!patternRaw.includes('(?<project>') || !patternRaw.includes('(?<role>')) {
      problems.push(`TESSERA_OIDC_PROJECT_ROLE_PATTERN="${patternRaw}" must have the named groups (?<project>...) and (?<role>...), as ${DEFAULT_OIDC_PROJECT_ROLE_PATTERN}`);
    }
  } catch (err) {
    problems.push(`TESSERA_OIDC_PROJECT_ROLE_PATTERN="${patternRaw}" is not a regular expression (${(err as Error).message})`);
  }
  if ((env.TESSERA_AUTH || 'on') === 'off') problems.push('TESSERA_OIDC_ISSUER is set with TESSERA_AUTH=off: there is no signing in without access control; remove one of them');
  if (!env.TESSERA_PUBLIC_URL && !isLoopbackHost(env.HOST || '127.0.0.1')) {
    problems.push(`TESSERA_OIDC_ISSUER with HOST="${env.HOST}" needs TESSERA_PUBLIC_URL: the issuer sends browsers back to <TESSERA_PUBLIC_URL>/api/auth/oidc/callback, the redirect URI registered there`);
  }
  if (problems.length > before || !issuer || !clientId || !clientSecret) return undefined;
  return {
    issuer, clientId, clientSecret: new Secret(clientSecret), name: (env.TESSERA_OIDC_NAME || 'Single sign-on').trim(), scopes, rolesClaim, adminValues, projectRolePattern,
  };
}

/** The repository's built-in extensions folder. */
export const BUILTIN_EXTENSIONS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../extensions');

function defaultExtensions(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') return ['hello-world', 'collect-metadata', 'delete-series'];
  if (raw.trim() === 'none') return [];
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name}="${raw}" must be an integer from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };
  const num = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) {
      problems.push(`${name}="${raw}" must be a number >= 0`);
      return fallback;
    }
    return n;
  };
  const positive = (name: string, fallback: number): number => {
    const n = num(name, fallback);
    if (n > 0) return n;
    problems.push(`${name}="${env[name]}" must be a number > 0`);
    return fallback;
  };
  const home = resolve(env.TESSERA_HOME || '.tessera');
  const durability = env.TESSERA_DB_DURABILITY || 'normal';
  if (durability !== 'normal' && durability !== 'full') problems.push(`TESSERA_DB_DURABILITY="${durability}" must be "normal" or "full"`);
  const runnersRaw = (env.TESSERA_RUNNERS || 'auto').trim();
  let runners: ServerConfig['runners'] = 'auto';
  if (runnersRaw !== 'auto') {
    const list = runnersRaw.split(',').map((s) => s.trim());
    const bad = list.filter((r) => r !== 'process' && r !== 'docker');
    if (bad.length > 0) problems.push(`TESSERA_RUNNERS="${runnersRaw}": unknown runner ${bad.join(', ')}; use "auto" or a list of process, docker`);
    runners = list.filter((r): r is 'process' | 'docker' => r === 'process' || r === 'docker');
  }
  // Unset: the runners and the image tool look at the default socket themselves.
  let dockerSocket: string | undefined;
  if (env.DOCKER_HOST) {
    const docker = parseDockerHost(env.DOCKER_HOST);
    if (docker.problem) problems.push(docker.problem);
    else dockerSocket = docker.socketPath;
  }
  let dicomPort: number | 'off' = 11112;
  if (env.DICOM_PORT === 'off') dicomPort = 'off';
  else dicomPort = int('DICOM_PORT', 11112, 0, 65535);
  const fsyncRaw = (env.TESSERA_DICOM_FSYNC || 'false').toLowerCase();
  if (!['true', 'false', '1', '0'].includes(fsyncRaw)) problems.push(`TESSERA_DICOM_FSYNC="${env.TESSERA_DICOM_FSYNC}" must be true or false`);
  const refuseSendersRaw = (env.TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS || '0').toLowerCase();
  if (!['true', 'false', '1', '0'].includes(refuseSendersRaw)) problems.push(`TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS="${env.TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS}" must be 1 or 0 (true or false)`);
  const duplicates = (env.TESSERA_DICOM_DUPLICATES || 'keep') as ServerConfig['dicomDuplicates'];
  if (!['keep', 'replace', 'reject'].includes(duplicates)) problems.push(`TESSERA_DICOM_DUPLICATES="${duplicates}" must be keep, replace or reject`);
  const aeTitle = env.TESSERA_DICOM_AE || 'TESSERA';
  if (!/^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(aeTitle)) problems.push(`TESSERA_DICOM_AE="${aeTitle}" must be 1 to 16 printable ASCII characters without a backslash`);
  const list = (raw: string | undefined): string[] => (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const allowedHosts = list(env.TESSERA_ALLOWED_HOSTS);
  for (const h of allowedHosts) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(:\d{1,5})?$/.test(h)) problems.push(`TESSERA_ALLOWED_HOSTS="${env.TESSERA_ALLOWED_HOSTS}": "${h}" is not a host or host:port (no scheme, no path; an IPv6 address in brackets)`);
  }
  const allowedOrigins = list(env.TESSERA_ALLOWED_ORIGINS);
  for (const o of allowedOrigins) {
    let ok = false;
    try {
      const u = new URL(o);
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === o.replace(/\/$/, '');
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`TESSERA_ALLOWED_ORIGINS="${env.TESSERA_ALLOWED_ORIGINS}": "${o}" is not an origin such as https://viewer.example.org or http://localhost:3000 (scheme, host, optional port; no path)`);
  }
  if (env.TESSERA_PUBLIC_URL) {
    try {
      new URL(env.TESSERA_PUBLIC_URL);
    } catch {
      problems.push(`TESSERA_PUBLIC_URL="${env.TESSERA_PUBLIC_URL}" is not a URL such as https://tessera.example.org`);
    }
  }
  let tls: ServerConfig['tls'];
  const certFile = env.TESSERA_TLS_CERT?.trim();
  const keyFile = env.TESSERA_TLS_KEY?.trim();
  if (certFile && keyFile) tls = { certFile: resolve(certFile), keyFile: resolve(keyFile) };
  else if (certFile || keyFile) {
    const [given, missing] = certFile ? ['TESSERA_TLS_CERT', 'TESSERA_TLS_KEY'] : ['TESSERA_TLS_KEY', 'TESSERA_TLS_CERT'];
    problems.push(`${given}="${certFile || keyFile}" is set but ${missing} is not: HTTPS needs both, the certificate and its private key (PEM files); set both, or neither for plain HTTP`);
  }
  const auth = (env.TESSERA_AUTH || 'on') as ServerConfig['auth'];
  if (auth !== 'on' && auth !== 'off') problems.push(`TESSERA_AUTH="${env.TESSERA_AUTH}" must be on or off`);
  else if (auth === 'off' && !isLoopbackHost(env.HOST || '127.0.0.1')) {
    problems.push(`TESSERA_AUTH=off with HOST="${env.HOST}": without access control the server may only bind a loopback address (127.0.0.1, ::1, localhost); remove TESSERA_AUTH=off to serve other machines`);
  }
  const httpPort = int('PORT', 8080, 0, 65535);
  let appsPort: number | 'same' = auth === 'off' ? 'same' : httpPort === 0 ? 0 : httpPort + 1;
  if (env.TESSERA_APPS_PORT === 'same') appsPort = 'same';
  else if (env.TESSERA_APPS_PORT) appsPort = int('TESSERA_APPS_PORT', 8081, 0, 65535);
  if (appsPort !== 'same' && appsPort !== 0 && appsPort === httpPort) problems.push(`TESSERA_APPS_PORT=${appsPort} is PORT: applications need their own port (or TESSERA_APPS_PORT=same)`);
  if (env.TESSERA_APPS_PUBLIC_URL) {
    const raw = env.TESSERA_APPS_PUBLIC_URL;
    let u: URL | undefined;
    try {
      u = new URL(raw.replace('{instance}', 'instance'));
    } catch {
      problems.push(`TESSERA_APPS_PUBLIC_URL="${raw}" is not a URL such as https://{instance}.apps.tessera.example.org (a host name per instance) or https://apps.tessera.example.org (one for all)`);
    }
    if (u && !['http:', 'https:'].includes(u.protocol)) problems.push(`TESSERA_APPS_PUBLIC_URL="${raw}" must be an http or https URL`);
    else if (u && (u.pathname !== '/' || u.search || u.hash || u.username || u.password)) problems.push(`TESSERA_APPS_PUBLIC_URL="${raw}" must be an origin only (scheme, host, port): instances keep their /applications/project/... paths under it`);
    else if (raw.includes('{instance}') && !/^https?:\/\/\{instance\}\.[a-z0-9-]+(\.[a-z0-9-]+)*(:\d{1,5})?\/?$/i.test(raw)) {
      problems.push(`TESSERA_APPS_PUBLIC_URL="${raw}": {instance} must be the first label of the host name, as in https://{instance}.apps.tessera.example.org (with a wildcard DNS name and certificate for *.apps.tessera.example.org)`);
    }
  }
  const sandbox = (env.TESSERA_SANDBOX || 'auto') as ServerConfig['sandbox'];
  if (!['auto', 'bwrap', 'off'].includes(sandbox)) problems.push(`TESSERA_SANDBOX="${env.TESSERA_SANDBOX}" must be auto, bwrap or off`);
  const allowRaw = (env.TESSERA_ALLOW_UNSANDBOXED || '0').toLowerCase();
  if (!['1', '0', 'true', 'false'].includes(allowRaw)) problems.push(`TESSERA_ALLOW_UNSANDBOXED="${env.TESSERA_ALLOW_UNSANDBOXED}" must be 1 or 0`);
  const launcher = (env.TESSERA_LAUNCHER || 'auto') as ServerConfig['launcher'];
  if (!['auto', 'native', 'node'].includes(launcher)) problems.push(`TESSERA_LAUNCHER="${env.TESSERA_LAUNCHER}" must be auto, native or node`);
  const logLevel = (env.TESSERA_LOG_LEVEL || 'info') as ServerConfig['logLevel'];
  if (!['info', 'warn', 'error', 'silent'].includes(logLevel)) problems.push(`TESSERA_LOG_LEVEL="${logLevel}" must be info, warn, error or silent`);
  const config: ServerConfig = {
    port: int('PORT', 8080, 0, 65535),
    host: env.HOST || '127.0.0.1',
    home,
    extensionRoots: (env.TESSERA_EXTENSIONS_DIRS ?? '').split(':').filter(Boolean).map((p) => resolve(p)),
    builtinExtensionsDir: resolve(env.TESSERA_BUILTIN_EXTENSIONS_DIR || BUILTIN_EXTENSIONS_DIR),
    defaultExtensions: defaultExtensions(env.TESSERA_DEFAULT_EXTENSIONS),
    extensionMaxPackageMb: int('TESSERA_EXTENSION_MAX_PACKAGE_MB', 2048, 1),
    parallelism: int('TESSERA_PARALLELISM', 16, 1, 10_000),
    ramPoolMb: int('TESSERA_RAM_POOL_MB', Math.floor((totalmem() / 1024 / 1024) * 0.8), 1),
    gpuPoolMb: int('TESSERA_GPU_POOL_MB', 0, 0),
    shmMb: int('TESSERA_SHM_MB', DEFAULT_SHM_MB, 1, 1024 * 1024),
    retentionDays: num('TESSERA_RETENTION_DAYS', 7),
    failedRetentionDays: num('TESSERA_FAILED_RETENTION_DAYS', 30),
    dbDurability: durability === 'full' ? 'full' : 'normal',
    runners,
    dockerSocket,
    tls,
    publicUrl: env.TESSERA_PUBLIC_URL || undefined,
    allowedHosts,
    allowedOrigins,
    logLevel,
    dicomPort,
    dicomAeTitle: aeTitle,
    dicomFsync: fsyncRaw === 'true' || fsyncRaw === '1',
    dicomDuplicates: duplicates,
    seriesQuietSeconds: num('TESSERA_SERIES_QUIET_SECONDS', 10),
    dicomMaxInstanceMb: int('TESSERA_DICOM_MAX_INSTANCE_MB', 1024, 1),
    dicomMaxUploadMb: int('TESSERA_DICOM_MAX_UPLOAD_MB', 4096, 1),
    dicomMaxAssociations: int('TESSERA_DICOM_MAX_ASSOCIATIONS', 32, 1, 10_000),
    dicomAssociationMemoryMb: int('TESSERA_DICOM_ASSOCIATION_MEMORY_MB', 16, 0, 4096),
    dicomIdleTimeoutSeconds: int('TESSERA_DICOM_IDLE_TIMEOUT_SECONDS', 60, 1, 86_400),
    dicomRefuseUnknownSenders: refuseSendersRaw === '1' || refuseSendersRaw === 'true',
    httpMaxConnections: int('TESSERA_HTTP_MAX_CONNECTIONS', 512, 0),
    httpHeadersTimeoutSeconds: positive('TESSERA_HTTP_HEADERS_TIMEOUT_SECONDS', 60),
    httpIdleTimeoutSeconds: num('TESSERA_HTTP_IDLE_TIMEOUT_SECONDS', 60),
    httpMinBodyRateKb: num('TESSERA_HTTP_MIN_BODY_RATE_KB', 1),
    httpMinBodyRateWindowSeconds: positive('TESSERA_HTTP_MIN_BODY_RATE_WINDOW_SECONDS', 60),
    checkAnswers: env.TESSERA_CHECK_ANSWERS === '1' || env.TESSERA_CHECK_ANSWERS === 'true',
    auth,
    oidc: oidcConfig(env, problems),
    appsPort,
    appsPublicUrl: env.TESSERA_APPS_PUBLIC_URL || undefined,
    sandbox,
    allowUnsandboxed: allowRaw === '1' || allowRaw === 'true',
    launcher,
    stateDir: resolve(env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state'), 'tessera'),
  };
  if (problems.length > 0) {
    throw new TesseraError('TESSERA_CONFIG', `invalid configuration: ${problems.join('; ')}`, {
      details: problems.map((p) => ({ where: p.split('=')[0]!, message: p })),
    });
  }
  return config;
}

/** True for an address only this machine reaches: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
