import type { Static } from '@sinclair/typebox';
import type { ErrorDetail, ErrorResponse } from '@tessera/api';

/** A thin client of the Tessera HTTP API; every CLI command goes through it. */

/** An error the CLI prints for a human and exits with. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly details: Static<typeof ErrorDetail>[];
  constructor(message: string, options: { exitCode?: number; details?: Static<typeof ErrorDetail>[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = options.exitCode ?? 1;
    this.details = options.details ?? [];
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

export class ApiClient {
  readonly baseUrl: string;

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
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

  /** Throws the server's error of a failed response as a CliError (its message and details). */
  async fail(res: Response, method: string, path: string): Promise<never> {
    const text = await res.text();
    const e = parseError(text);
    throw new CliError(e?.message ?? `${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`, { details: e?.details ?? [] });
  }

  async #request<T>(method: string, path: string, body?: unknown, query: Query = {}): Promise<T> {
    const res = await this.#fetch(method, path, query, body === undefined ? undefined : { json: body });
    if (!res.ok) await this.fail(res, method, path);
    return (await res.json()) as T;
  }

  async #fetch(method: string, path: string, query: Query, body?: RequestBody): Promise<Response> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const item of v) url.searchParams.append(k, item);
      else url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { ...(body?.json !== undefined ? { 'content-type': 'application/json' } : {}), ...body?.headers };
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

/** The `error` object of an error answer's text, or undefined when it is not the API's JSON. */
export function parseError(text: string): ApiError | undefined {
  try {
    return (JSON.parse(text) as { error?: ApiError }).error;
  } catch {
    return undefined;
  }
}
