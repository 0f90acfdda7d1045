/**
 * When the engine pulls an operator's image, as Kubernetes' imagePullPolicy:
 * `IfNotPresent` (default) pulls only when the engine lacks it, `Always` pulls at each
 * use (a moved tag is followed), `Never` only uses what the engine holds.
 */
export const IMAGE_PULL_POLICIES = ['IfNotPresent', 'Always', 'Never'] as const;
export type ImagePullPolicy = (typeof IMAGE_PULL_POLICIES)[number];
export const DEFAULT_IMAGE_PULL_POLICY: ImagePullPolicy = 'IfNotPresent';

/** An image reference taken apart, the way the Docker engine reads it. */
export interface ImageReference {
  /** The registry host (and port) the engine pulls from; "docker.io" when the name has none. */
  registry: string;
  /** Whether the name spelled its registry out (`host[:port]/...`). */
  explicitRegistry: boolean;
  /** The repository path within the registry, e.g. "ns/name". */
  repository: string;
  tag?: string;
  digest?: string;
}

// The grammar of github.com/distribution/reference.
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN_PART = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_PART}(?:\\.${DOMAIN_PART})*|\\[[0-9A-Fa-f:]+\\])(?::[0-9]{1,5})?$`);
const PATH = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;

const EXAMPLES = 'e.g. "name:tag", "registry.example.org:5000/ns/name:tag" or "name@sha256:<64 hex digits>"';

/**
 * Why `ref` is not a valid image reference, or undefined when it is. Accepts
 * `[host[:port]/]path[:tag][@digest]` as the Docker engine does.
 */
export function imageReferenceProblem(ref: string): string | undefined {
  try {
    parseImageReference(ref);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Takes an image reference apart; throws an Error saying what is wrong with it (callers wrap it in their own error code). */
export function parseImageReference(ref: string): ImageReference {
  const bad = (why: string): Error => new Error(`"${ref}" is not a valid image reference: ${why} (${EXAMPLES})`);
  if (ref.length === 0) throw bad('it is empty');
  if (ref.length > 512) throw bad('it is longer than 512 characters');
  if (/\s/.test(ref)) throw bad('it contains white space');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`the digest "${digest}" must be <algorithm>:<hex>`);
    if (digest.startsWith('sha256:') && digest.length !== 'sha256:'.length + 64) throw bad('a sha256 digest has exactly 64 hex digits');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`the tag "${tag}" may hold only letters, digits, "_", "." and "-" (at most 128, not starting with "." or "-")`);
  }
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  // As the engine decides: the first component is a registry when it has a "." or ":", is "localhost", or has upper case.
  const explicitRegistry = slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase() || first.startsWith('['));
  const registry = explicitRegistry ? first : 'docker.io';
  const repository = explicitRegistry ? rest.slice(slash + 1) : rest;
  if (explicitRegistry && !DOMAIN.test(registry)) throw bad(`the registry "${registry}" is not a host name or address with an optional port`);
  if (explicitRegistry) {
    const port = /:(\d+)$/.exec(registry)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw bad(`the port ${port} of the registry is outside 1-65535`);
  }
  if (repository.length === 0) throw bad('it has no repository name');
  if (repository.length > 255) throw bad('the repository name is longer than 255 characters');
  if (!PATH.test(repository)) {
    throw bad(`the repository "${repository}" must be lower-case letters and digits, separated by "/", ".", "_", "__" or "-"`);
  }
  return { registry, explicitRegistry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}
