// The UI's only way to the server: the documented HTTP API. Every failure becomes an
// ApiError whose message is readable as it stands (code, message, the fields it names).
// The shapes of the answers are the contract's (@tessera/api), imported as types only:
// the bundle takes none of the contract's runtime code (TypeBox, the schemas).

import type { AnswerOf, apiRoutes, Me, RouteContract } from '@tessera/api';

export interface ErrorDetail {
  where: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorDetail[];
  /** The whole JSON body of the error answer (an import's `files`, for example). */
  readonly body: unknown;
  constructor(status: number, code: string, message: string, details: ErrorDetail[] = [], body: unknown = undefined) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.body = body;
  }
  /** Details by field (`workflow_form.threshold` -> message). */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const d of this.details) if (d.where) out[d.where] = d.message;
    return out;
  }
}

/** An error of any kind as one readable sentence. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.code ? `${err.message} (${err.code}, HTTP ${err.status})` : `${err.message} (HTTP ${err.status})`;
  if (err instanceof Error) return err.message;
  return String(err);
}

export async function toApiError(res: Response, what: string): Promise<ApiError> {
  const err = await readApiError(res, what);
  if (needsSignIn(err, what)) for (const l of signInListeners) l(err);
  return err;
}

async function readApiError(res: Response, what: string): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; details?: ErrorDetail[] } };
    if (body.error?.message) return new ApiError(res.status, body.error.code ?? '', body.error.message, body.error.details ?? [], body);
  } catch {
    // not JSON: fall through
  }
  const snippet = text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
  return new ApiError(res.status, '', `${what} failed: ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`);
}

// ------------------------------------------------------------------ signing in

/** Calls whose 401 means "wrong password" (shown in their form), not "sign in first". */
const SIGN_IN_CALLS = /^POST \/api\/auth\/(sign-in|link|password)$/;

/**
 * True when an error answer means the user must go to the sign-in page: 401 (no session,
 * or it ended), or 403 TESSERA_PASSWORD_CHANGE_REQUIRED. Not for the sign-in calls
 * themselves, whose 401 is a wrong password.
 */
export function needsSignIn(err: ApiError, what: string): boolean {
  if (SIGN_IN_CALLS.test(what.split('?')[0] ?? '')) return false;
  return err.status === 401 || (err.status === 403 && err.code === 'TESSERA_PASSWORD_CHANGE_REQUIRED');
}

const signInListeners = new Set<(err: ApiError) => void>();

/** Calls `listener` on every answer that {@link needsSignIn} (the app sends the user to /sign-in). */
export function onSignInNeeded(listener: (err: ApiError) => void): () => void {
  signInListeners.add(listener);
  return () => signInListeners.delete(listener);
}

/**
 * GET /api/auth/me. The first call takes the answer index.html asked for while the app's
 * code loaded (`window.__tesseraMe`), so the first page waits for no extra round trip.
 */
export async function loadMe(): Promise<Me> {
  const w = window as unknown as { __tesseraMe?: Promise<Response | null> };
  const early = w.__tesseraMe;
  w.__tesseraMe = undefined;
  const res = early ? await early : null;
  if (!res) return get<Me>('/api/auth/me');
  if (!res.ok) throw await toApiError(res, 'GET /api/auth/me');
  return (await res.json()) as Me;
}

export type Query = Record<string, string | number | boolean | undefined | null | string[]>;

export function qs(query: Query = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

export async function api<T>(method: string, path: string, body?: unknown, init: RequestInit = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      ...init,
      headers: body === undefined ? init.headers : { 'content-type': 'application/json', ...init.headers },
      body: body === undefined ? init.body : JSON.stringify(body),
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', `${method} ${path.split('?')[0]}: the server cannot be reached (${(err as Error).message})`);
  }
  if (!res.ok) throw await toApiError(res, `${method} ${path.split('?')[0]}`);
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

export const get = <T>(path: string, query?: Query, init?: RequestInit) => api<T>('GET', path + qs(query), undefined, init);
export const post = <T>(path: string, body?: unknown, query?: Query) => api<T>('POST', path + qs(query), body ?? {});
export const del = <T>(path: string, body?: unknown, query?: Query) => api<T>('DELETE', path + qs(query), body);
export const put = <T>(path: string, body: unknown) => api<T>('PUT', path, body);
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body);

// ------------------------------------------------------------------ shapes (the contract's)

export type {
  ApiToken,
  AppInstance,
  AuditEntry,
  AuthProviders,
  CreatedToken,
  Me,
  Member,
  Membership,
  User,
  Dataset,
  DeleteSeriesResult,
  DeletedExtensionVersion,
  Extension,
  ExtensionCatalog,
  ExtensionPackage,
  ExtensionParameter,
  Health,
  ImportError,
  ImportFile,
  ImportResult,
  Job,
  Project,
  ResultFile,
  RunDetail,
  Series,
  SeriesDetail,
  SeriesFacets,
  SystemReport,
  Workflow,
} from '@tessera/api';

type Routes = typeof apiRoutes;

/**
 * The JSON answer of a route of the contract, named by its domain and name in `apiRoutes`
 * (for the answers that have no name of their own, such as a page of a list):
 * `Answer<'workflows', 'listRuns'>` is what GET /api/runs answers with 200.
 */
export type Answer<D extends keyof Routes, R extends keyof Routes[D], S extends number = 200> = Routes[D][R] extends RouteContract
  ? S extends keyof Routes[D][R]['response']
    ? AnswerOf<Routes[D][R], S>
    : never
  : never;

/**
 * Where the UI opens an application instance: its path on this (the platform's) origin.
 * The platform then signs the browser in to the instance's own host with a single-use
 * ticket and sends it there (ADR 16); a link straight to that host would take a detour
 * through the platform's public URL, which may be another name for this same server.
 */
export function openHref(instanceUrl: string): string {
  const u = new URL(instanceUrl, window.location.href);
  return `${u.pathname}${u.search}`;
}
