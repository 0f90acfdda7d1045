import type { Static } from '@sinclair/typebox';
import type { ErrorDetail, ErrorResponse } from '@tessera/api';
import type { TokenCredential } from './credentials.ts';

/** A thin client of the Tessera HTTP API; every CLI command goes through it. */

/** An error the CLI prints for a human and exits with. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly details: Static<typeof ErrorDetail>[];
  /** The server's error code and HTTP status, when the error is the server's answer. */
  readonly code: string | undefined;
  readonly status: number | undefined;
  constructor(message: string, options: { exitCode?: number; details?: Static<typeof ErrorDetail>[]; cause?: unknown; code?: string | undefined; status?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = options.exitCode ?? 1;
    this.details = options.details ?? [];
    this.code = options.code;
    this.status = options.status;
  }
}

/** Query parameters; an array is sent as a repeated parameter (`tag=a&tag=b`). */
export type Query = Record<string, string | number | boolean | string[] | undefined>;

/** What a request sends: a JSON value, or a raw body (bytes streamed as the request goes out: uploads) with its headers. */
export interface RequestBody {
  json?: unknown;
  raw?: AsyncIterable<Uint8Array>;
  headers?: Record<string, string>;
}

/**
 * The `error` of a failed answer (`{ error: { code, message, details } }`), each field
 * optional: the text may come from something else than the API (a proxy in between).
 */
export type ApiError = Partial<Static<typeof ErrorResponse>['error']>;

/**
 * How requests sign in: an API token (`Authorization: Bearer`), found by
 * credentials.ts; or a session cookie, only while `tessera login` creates a token.
 * Neither is ever printed, nor put in a URL or an error message.
 */
/** `session`: the cookie as the server set it, `name=value`. */
export type ClientCredential = TokenCredential | { session: string };

/** Routes whose 401 means a wrong password, not a request that is not signed in: their own message is kept. */
const PASSWORD_CHECKS = new Set(['/api/auth/sign-in', '/api/auth/link', '/api/auth/password']);

export class ApiClient {
  readonly baseUrl: string;
  /** How requests sign in; none: anonymous (a server with TESSERA_AUTH=off needs nothing). */
  readonly credential: ClientCredential | undefined;

  constructor(baseUrl: string, credential?: ClientCredential) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.credential = credential;
  }

  /** A client of the same server signing in another way. */
  with(credential: ClientCredential | undefined): ApiClient {
    return new ApiClient(this.baseUrl, credential);
  }

  /** A request whose success answer has no body (204: revoke, delete, sign out). */
  async empty(method: string, path: string, body?: unknown): Promise<void> {
    const res = await this.#fetch(method, path, {}, body === undefined ? undefined : { json: body });
    if (!res.ok) await this.fail(res, method, path);
    await res.body?.cancel();
  }

  async get<T>(path: string, query: Query = {}): Promise<T> {
    return this.#request<T>('GET', path, undefined, query);
  }

  async post<T>(path: string, body?: unknown, query: Query = {}): Promise<T> {
    return this.#request<T>('POST', path, body ?? {}, query);
  }

  async put<T>(path: string, body: unknown): Promise<T> {
    return this.#request<T>('PUT', path, body);
  }

  async patch<T>(path: string, body: unknown): Promise<T> {
    return this.#request<T>('PATCH', path, body);
  }

  /** DELETE, with a JSON body when the endpoint takes one (removing series from a dataset). */
  async delete<T>(path: string, query: Query = {}, body?: unknown): Promise<T> {
    return this.#request<T>('DELETE', path, body, query);
  }

  /** Streams a text response (task logs), calling `onChunk` for each piece. */
  async stream(path: string, query: Query, onChunk: (text: string) => void): Promise<void> {
    const res = await this.#fetch('GET', path, query);
    if (!res.ok) await this.fail(res, 'GET', path);
    if (!res.body) return;
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) onChunk(decoder.decode(chunk, { stream: true }));
    const tail = decoder.decode();
    if (tail) onChunk(tail);
  }

  /** A successful response whose body the caller reads (downloads); the server's error otherwise. */
  async download(path: string, query: Query = {}): Promise<Response> {
    const res = await this.#fetch('GET', path, query);
    if (!res.ok) await this.fail(res, 'GET', path);
    return res;
  }

  /**
   * Sends a request and answers the response whatever its status (uploads read the
   * summary of an error answer too). Only an unreachable server throws.
   */
  async send(method: string, path: string, query: Query, body: RequestBody): Promise<Response> {
    return this.#fetch(method, path, query, body);
  }

  /**
   * Throws the server's error of a failed response as a CliError: see {@link errorOf}.
   */
  async fail(res: Response, method: string, path: string): Promise<never> {
    throw this.errorOf(res.status, await res.text(), method, path);
  }

  /**
   * The CliError of a failed answer (its status and text): the server's message and
   * details; for a request that is not signed in, or that needs a new password first,
   * what to do instead.
   */
  errorOf(status: number, text: string, method: string, path: string): CliError {
    const e = parseError(text);
    if (status === 401 && !PASSWORD_CHECKS.has(path)) {
      const c = this.credential;
      const refused = c === undefined || 'session' in c ? '' : `\n  The server refused the token from ${tokenOrigin(c)}: it is revoked, expired, or of another server.`;
      return new CliError(
        `not signed in to ${this.baseUrl}: run \`tessera login ${this.baseUrl}\` or set TESSERA_TOKEN (create one with \`tessera token create\`)${refused}`,
        { code: e?.code, status },
      );
    }
    if (status === 403 && e?.code === 'TESSERA_PASSWORD_CHANGE_REQUIRED') {
      return new CliError(`your password was set by someone else and must be changed first: sign in in the UI at ${this.baseUrl}, or run \`tessera password\``, { code: e.code, status });
    }
    return new CliError(e?.message ?? `${method} ${path} answered ${status}: ${text.slice(0, 300)}`, { details: e?.details ?? [], code: e?.code, status });
  }

  async #request<T>(method: string, path: string, body?: unknown, query: Query = {}): Promise<T> {
    const res = await this.#fetch(method, path, query, body === undefined ? undefined : { json: body });
    if (!res.ok) await this.fail(res, method, path);
    return (await res.json()) as T;
  }

  #authHeaders(): Record<string, string> {
    const c = this.credential;
    if (c === undefined) return {};
    return 'session' in c ? { cookie: c.session } : { authorization: `Bearer ${c.token}` };
  }

  async #fetch(method: string, path: string, query: Query, body?: RequestBody): Promise<Response> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const item of v) url.searchParams.append(k, item);
      else url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { ...(body?.json !== undefined ? { 'content-type': 'application/json' } : {}), ...body?.headers, ...this.#authHeaders() };
    try {
      return await fetch(url, {
        method,
        headers,
        // Node's fetch takes an async iterable of bytes as a body; its global types do not say so.
        body: body?.json !== undefined ? JSON.stringify(body.json) : (body?.raw as RequestInit['body']),
        // A streamed body (uploads) needs half duplex. It cannot follow a redirect anyway, and
        // unless redirects are refused, fetch tees it for one and keeps every byte sent in
        // memory until the answer (nodejs/undici#4058): a 10 GB import would hold 10 GB.
        ...(body?.raw !== undefined ? { duplex: 'half' as const, redirect: 'error' as const } : {}),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        `cannot reach the Tessera server at ${this.baseUrl} (${cause?.code ?? cause?.message ?? (err as Error).message}).\n` +
          '  Is it running? Start it with `npm start` in the repository, or point the CLI elsewhere with --url or TESSERA_URL.',
        { cause: err },
      );
    }
  }
}

/** The server's session cookie (packages/server/src/auth/access-control.ts). */
export const SESSION_COOKIE = 'tessera_session';

/** Where a token came from, in an error message (never the token). */
function tokenOrigin(c: TokenCredential): string {
  return c.from === 'env' ? 'TESSERA_TOKEN' : c.from === 'login' ? `\`tessera login\` (${c.file})` : `the server's runtime file (${c.file})`;
}

/** The `error` object of an error answer's text, or undefined when it is not the API's JSON. */
export function parseError(text: string): ApiError | undefined {
  try {
    return (JSON.parse(text) as { error?: ApiError }).error;
  } catch {
    return undefined;
  }
}
