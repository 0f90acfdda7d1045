/** A thin client of the Tessera HTTP API; every CLI command goes through it. */

/** An error the CLI prints for a human and exits with. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly details: { where: string; message: string }[];
  constructor(message: string, options: { exitCode?: number; details?: { where: string; message: string }[] } = {}) {
    super(message);
    this.exitCode = options.exitCode ?? 1;
    this.details = options.details ?? [];
  }
}

export class ApiClient {
  readonly baseUrl: string;

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  async get<T>(path: string, query: Record<string, string | number | boolean | undefined> = {}): Promise<T> {
    return this.#request<T>('GET', path, undefined, query);
  }

  async post<T>(path: string, body?: unknown): Promise<T> {
    return this.#request<T>('POST', path, body ?? {});
  }

  /** Streams a text response (task logs), calling `onChunk` for each piece. */
  async stream(path: string, query: Record<string, string | number | boolean | undefined>, onChunk: (text: string) => void): Promise<void> {
    const res = await this.#fetch('GET', path, undefined, query);
    if (!res.ok) await this.#fail(res, 'GET', path);
    if (!res.body) return;
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) onChunk(decoder.decode(chunk, { stream: true }));
    const tail = decoder.decode();
    if (tail) onChunk(tail);
  }

  async #request<T>(method: string, path: string, body?: unknown, query: Record<string, string | number | boolean | undefined> = {}): Promise<T> {
    const res = await this.#fetch(method, path, body, query);
    if (!res.ok) await this.#fail(res, method, path);
    return (await res.json()) as T;
  }

  async #fetch(method: string, path: string, body: unknown, query: Record<string, string | number | boolean | undefined>): Promise<Response> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    try {
      return await fetch(url, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        `cannot reach the Tessera server at ${this.baseUrl} (${cause?.code ?? cause?.message ?? (err as Error).message}).\n` +
          '  Is it running? Start it with `npm start` in the repository, or point the CLI elsewhere with --url or TESSERA_URL.',
      );
    }
  }

  async #fail(res: Response, method: string, path: string): Promise<never> {
    const text = await res.text();
    let parsed: { error?: { code?: string; message?: string; details?: { where: string; message: string }[] } } | undefined;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const e = parsed?.error;
    throw new CliError(e?.message ?? `${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`, { details: e?.details ?? [] });
  }
}
