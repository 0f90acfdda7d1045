/**
 * One error base for the whole platform. Every error carries a stable `code`
 * (listed in {@link ERROR_CODES} and documented in docs/reference/errors.md),
 * the HTTP status it maps to, and whose fault it is:
 * - `user`: the request or input is wrong; retrying the same thing will fail again.
 * - `operational`: something outside us failed (disk, Docker engine); a retry may help.
 * - `bug`: an invariant of ours broke.
 */
export type ErrorKind = 'user' | 'operational' | 'bug';

export const ERROR_CODES = {
  TESSERA_INVALID_SPEC: { status: 400, kind: 'user', summary: 'A DAG spec is invalid (schema, cycle, unknown upstream, duplicate task id).' },
  TESSERA_INVALID_FORM: { status: 400, kind: 'user', summary: 'A workflow_form or data_form value does not match the workflow\'s form schema.' },
  TESSERA_INVALID_REQUEST: { status: 400, kind: 'user', summary: 'An API request body or parameter is malformed.' },
  TESSERA_INVALID_MANIFEST: { status: 400, kind: 'user', summary: 'An extension manifest (tessera-extension.json) is invalid.' },
  TESSERA_INVALID_PACKAGE: { status: 400, kind: 'user', summary: 'An extension package (.tgz) is refused: bad archive entries, checksum mismatch, too large, or what it holds is invalid.' },
  TESSERA_EXTENSION_INCOMPATIBLE: { status: 409, kind: 'user', summary: 'An extension cannot be installed or uninstalled here: platform version, missing or dependent extensions.' },
  TESSERA_DOCKER: { status: 503, kind: 'operational', summary: 'The Docker engine is missing or failed (building, loading or removing an image).' },
  TESSERA_SANDBOX: { status: 503, kind: 'operational', summary: 'Local processes (process tasks and applications) are refused: the server has no sandbox (bubblewrap) and TESSERA_ALLOW_UNSANDBOXED is not set.' },
  TESSERA_NOT_FOUND: { status: 404, kind: 'user', summary: 'The named project, workflow, job, run or task does not exist.' },
  TESSERA_CONFLICT: { status: 409, kind: 'user', summary: 'The request conflicts with the current state (name taken, run not retryable).' },
  TESSERA_INVALID_DICOM: { status: 400, kind: 'user', summary: 'DICOM bytes are not a valid instance (truncated, garbage, wrong preamble, missing UIDs, unsupported transfer syntax).' },
  TESSERA_PAYLOAD_TOO_LARGE: { status: 413, kind: 'user', summary: 'An upload, a part or an archive entry is larger than the configured limit.' },
  TESSERA_REQUEST_TIMEOUT: { status: 408, kind: 'user', summary: 'A request body stalled or came slower than the configured minimum rate; the connection was closed.' },
  TESSERA_UNSUPPORTED_MEDIA_TYPE: { status: 415, kind: 'user', summary: 'The request body has a content type this endpoint does not take.' },
  TESSERA_NOT_ACCEPTABLE: { status: 406, kind: 'user', summary: 'None of the media types in the Accept header can be produced for this resource.' },
  TESSERA_HOST_NOT_ALLOWED: { status: 421, kind: 'user', summary: 'The request\'s Host is not a name of this server (loopback, TESSERA_PUBLIC_URL, TESSERA_ALLOWED_HOSTS): DNS rebinding protection.' },
  TESSERA_CROSS_ORIGIN: { status: 403, kind: 'user', summary: 'A state-changing request came from another origin (a page of another site): CSRF protection.' },
  TESSERA_UNAUTHENTICATED: { status: 401, kind: 'user', summary: 'The request is not signed in (no session, or an unknown, expired or revoked token): sign in, or send `Authorization: Bearer <token>`.' },
  TESSERA_FORBIDDEN: { status: 403, kind: 'user', summary: "The caller is signed in but their role does not allow this (an admin's route, a principal investigator's action, a run's scoped token outside its rights)." },
  TESSERA_PASSWORD_CHANGE_REQUIRED: { status: 403, kind: 'user', summary: 'The password was set by someone else (the initial admin password, an admin reset): change it first (POST /api/auth/password, or the UI).' },
  TESSERA_TOO_MANY_REQUESTS: { status: 429, kind: 'user', summary: 'Too many failed sign-ins for this name or from this address: wait the time in Retry-After.' },
  TESSERA_IDENTITY_PROVIDER: { status: 502, kind: 'operational', summary: 'The OpenID Connect issuer could not be reached or answered something unusable (discovery, token or userinfo endpoint).' },
  TESSERA_STORAGE: { status: 503, kind: 'operational', summary: 'Writing to the store failed (disk full, permissions); retrying later may help.' },
  TESSERA_CONFIG: { status: 500, kind: 'user', summary: 'A configuration value (environment variable) is invalid.' },
  TESSERA_INTERNAL: { status: 500, kind: 'bug', summary: 'An unexpected internal error.' },
} as const satisfies Record<string, { status: number; kind: ErrorKind; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A detail of an error: which field or task is at fault, and what is wrong with it. */
export interface ErrorDetail {
  /** JSON-pointer-like path or task id, e.g. `workflow_form.threshold` or `tasks[2] (id "segment")`. */
  where: string;
  message: string;
}

export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly kind: ErrorKind;
  readonly details: ErrorDetail[];

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TesseraError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.kind = ERROR_CODES[code].kind;
    this.details = options.details ?? [];
  }

  /** The JSON body the HTTP API answers with. */
  toJSON(): { error: { code: ErrorCode; message: string; details: ErrorDetail[] } } {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export function notFound(what: string, name: string): TesseraError {
  return new TesseraError('TESSERA_NOT_FOUND', `${what} "${name}" does not exist`);
}
