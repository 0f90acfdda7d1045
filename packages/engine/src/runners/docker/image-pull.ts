import { readFileSync } from 'node:fs';
import type Dockerode from 'dockerode';
import { DEFAULT_IMAGE_PULL_POLICY, TesseraError, parseImageReference, type ImagePullPolicy } from '@tessera/model';

/** The environment variable naming the registry credentials file (Docker's config.json format). */
export const REGISTRY_AUTH_FILE_ENV = 'TESSERA_REGISTRY_AUTH_FILE';

/** Credentials of one registry, as the engine takes them (X-Registry-Auth). */
export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

/** Where registry credentials come from: a Docker config.json-style file, read at each pull (so that a changed file counts at once). */
export interface RegistryCredentials {
  /** Path of `{"auths": {"host:port": {"auth": base64(user:password)}}}`; undefined: no credentials configured. */
  authFile?: string;
}

/** The credentials configured by the environment ({@link REGISTRY_AUTH_FILE_ENV}). */
export function registryCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): RegistryCredentials {
  const file = env[REGISTRY_AUTH_FILE_ENV]?.trim();
  return file ? { authFile: file } : {};
}

/** Registry keys of config.json as they appear in the wild ("https://host:port/v1/", "host:port") reduced to host[:port]. */
function registryKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return ['index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com'].includes(host) ? 'docker.io' : host;
}

/**
 * The credentials for `registry` from the configured file, or undefined when none are
 * configured for it. A file that cannot be read or parsed throws, naming the setting and
 * the path, never its content.
 */
export function registryAuthFor(registry: string, credentials: RegistryCredentials): RegistryAuth | undefined {
  if (!credentials.authFile) return undefined;
  const where = `${REGISTRY_AUTH_FILE_ENV} (${credentials.authFile})`;
  let parsed: { auths?: Record<string, { auth?: unknown; username?: unknown; password?: unknown }> };
  try {
    parsed = JSON.parse(readFileSync(credentials.authFile, 'utf8')) as typeof parsed;
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err instanceof SyntaxError ? 'not valid JSON' : 'unreadable');
    throw new TesseraError('TESSERA_CONFIG', `the registry credentials file ${where} cannot be read: ${reason}`);
  }
  const want = registryKey(registry);
  const entry = Object.entries(parsed?.auths ?? {}).find(([key]) => registryKey(key) === want)?.[1];
  if (!entry) return undefined;
  if (typeof entry.username === 'string' && typeof entry.password === 'string') {
    return { username: entry.username, password: entry.password, serveraddress: registry };
  }
  const decoded = typeof entry.auth === 'string' ? Buffer.from(entry.auth, 'base64').toString('utf8') : '';
  const colon = decoded.indexOf(':');
  if (colon <= 0) {
    throw new TesseraError('TESSERA_CONFIG', `the entry for ${registry} in ${where} has no usable "auth" (base64 of user:password) nor "username" and "password"`);
  }
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), serveraddress: registry };
}

export interface EnsureImageOptions {
  policy?: ImagePullPolicy;
  credentials?: RegistryCredentials;
  /** Pull progress, one line at a time (a layer's state changes, the digest, the outcome). */
  onLine?: (line: string) => void;
  /** Names the engine in messages, e.g. "unix:///var/run/docker.sock". */
  where?: string;
}

/** What {@link ensureImage} did. */
export interface EnsuredImage {
  /** The engine pulled the image now. */
  pulled: boolean;
  /** The engine did not hold the image before (so a failed install may remove it again). */
  wasAbsent: boolean;
}

type InFlight = Map<string, Promise<void>>;
const pulling = new WeakMap<object, InFlight>();

/**
 * Makes sure the engine holds `image`, per its pull policy: `IfNotPresent` pulls only a
 * missing image, `Always` pulls (the registry says when nothing changed), `Never` refuses
 * a missing one. Credentials come from the configured file; a refused pull throws a
 * TESSERA_DOCKER error saying why (credentials missing or wrong and which setting, no
 * such image, registry unreachable), which never contains the secret.
 */
export async function ensureImage(docker: Dockerode, image: string, options: EnsureImageOptions = {}): Promise<EnsuredImage> {
  const policy = options.policy ?? DEFAULT_IMAGE_PULL_POLICY;
  const where = options.where ?? 'the Docker engine';
  let ref;
  try {
    ref = parseImageReference(image);
  } catch (err) {
    throw new TesseraError('TESSERA_INVALID_SPEC', (err as Error).message);
  }
  const present = await hasImage(docker, image);
  if (policy === 'Never') {
    if (present) return { pulled: false, wasAbsent: false };
    throw new TesseraError('TESSERA_DOCKER', `image "${image}" is not on the Docker engine at ${where}, and its image_pull_policy is Never: ` +
      `load or build it there (docker load, docker pull), embed it in the package, or set image_pull_policy to IfNotPresent`);
  }
  if (present && policy === 'IfNotPresent') return { pulled: false, wasAbsent: false };

  let inflight = pulling.get(docker);
  if (!inflight) pulling.set(docker, (inflight = new Map()));
  const running = inflight.get(image);
  if (running) {
    options.onLine?.(`waiting for the pull of ${image} that is already under way`);
    await running;
    return { pulled: true, wasAbsent: !present };
  }
  const auth = registryAuthFor(ref.registry, options.credentials ?? {});
  const fromImage = ref.tag !== undefined || ref.digest !== undefined ? image : `${image}:latest`;
  const pull = pullImage(docker, fromImage, ref.registry, auth, options);
  inflight.set(image, pull);
  try {
    await pull;
  } finally {
    inflight.delete(image);
  }
  return { pulled: true, wasAbsent: !present };
}

async function hasImage(docker: Dockerode, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw new TesseraError('TESSERA_DOCKER', `could not inspect image ${image}: ${(err as Error).message}`, { cause: err });
  }
}

interface PullEvent {
  id?: string;
  status?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string };
}

async function pullImage(docker: Dockerode, fromImage: string, registry: string, auth: RegistryAuth | undefined, options: EnsureImageOptions): Promise<void> {
  const onLine = options.onLine ?? (() => {});
  const secrets = auth ? [auth.password, Buffer.from(`${auth.username}:${auth.password}`).toString('base64')].filter((s) => s.length >= 3) : [];
  const scrub = (text: string): string => secrets.reduce((t, s) => t.split(s).join('***'), text);
  const fail = (message: string, cause?: unknown): TesseraError => {
    const clean = scrub(message.trim());
    return new TesseraError('TESSERA_DOCKER', explainPullFailure(fromImage, registry, clean, auth !== undefined, options.credentials ?? {}), { cause: cause instanceof Error ? new Error(clean) : undefined });
  };
  onLine(`pulling ${fromImage} from ${registry}${auth ? ` (with the credentials for ${registry} from ${REGISTRY_AUTH_FILE_ENV})` : ''}`);
  let stream: NodeJS.ReadableStream;
  try {
    stream = (await (auth ? docker.createImage(auth, { fromImage }) : docker.createImage({ fromImage }))) as NodeJS.ReadableStream;
  } catch (err) {
    const e = err as { json?: { message?: string } | null; message: string };
    throw fail(e.json?.message ?? e.message, err);
  }
  const lastStatus = new Map<string, string>();
  const error = await new Promise<string | undefined>((done) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: PullEvent[]) => done(err?.message ?? output.find((o) => o.error)?.error),
      (event: PullEvent) => {
        if (event.error || !event.status) return;
        // One line per layer and state (not per progress tick): "Pulling fs layer", "Downloading", "Pull complete", ...
        const key = event.id ?? '';
        if (lastStatus.get(key) === event.status) return;
        lastStatus.set(key, event.status);
        onLine(scrub(`${event.id ? `${event.id}: ` : ''}${event.status}`));
      },
    );
  });
  if (error) throw fail(error);
}

/** Says why a pull failed, from the engine's message: credentials, no such image, unreachable registry, or else the engine's words. */
export function explainPullFailure(image: string, registry: string, message: string, hadCredentials: boolean, credentials: RegistryCredentials): string {
  const m = message.toLowerCase();
  if (/unauthorized|authentication required|no basic auth credentials|\b401\b|denied: access|incorrect username or password/.test(m) && !/repository does not exist/.test(m)) {
    const setting = credentials.authFile ? `${REGISTRY_AUTH_FILE_ENV} (${credentials.authFile})` : REGISTRY_AUTH_FILE_ENV;
    return hadCredentials
      ? `registry ${registry} refused the credentials for pulling ${image} (401 unauthorized): the credentials for ${registry} in ${setting} are wrong; correct them there`
      : `registry ${registry} asks for credentials to pull ${image} (401 unauthorized), and none are configured for ${registry}: ` +
        `set ${REGISTRY_AUTH_FILE_ENV} to a file like {"auths": {"${registry}": {"auth": "<base64 of user:password>"}}}` +
        (credentials.authFile ? ` (the file ${credentials.authFile} has no entry for ${registry})` : '');
  }
  if (/manifest unknown|not found|repository does not exist|name unknown/.test(m)) {
    return `image ${image} does not exist in registry ${registry} (manifest unknown): check its name and tag (${message})`;
  }
  if (/connection refused|i\/o timeout|timeout|no such host|network is unreachable|no route to host|server misbehaving|tls handshake|dial tcp/.test(m)) {
    const why = /connection refused/.test(m) ? 'connection refused'
      : /no such host|server misbehaving/.test(m) ? 'host name not found'
      : /timeout/.test(m) ? 'timed out'
      : /unreachable|no route/.test(m) ? 'network unreachable'
      : 'network error';
    return `registry ${registry} cannot be reached to pull ${image} (${why}): check that it runs and that this machine reaches it (${message})`;
  }
  return `pulling ${image} from registry ${registry} failed: ${message}`;
}
