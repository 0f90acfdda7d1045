import { Type, type Static } from '@sinclair/typebox';
import { DateTime, errors, Nullable, Obj, PageOf, PageParams } from './common.ts';
import { ADMIN, defineRoute, Media, NoContent, PRINCIPAL_INVESTIGATOR, PUBLIC, SCIENTIST, SIGNED_IN, type ProjectRole } from './route.ts';

/** A user name: 1-64 letters, digits, ".", "_", "-" and "@" (an e-mail address works). */
export const USER_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$';

const Role = Type.Unsafe<ProjectRole>({ type: 'string', enum: ['scientist', 'principal-investigator'], description: "A project role: 'scientist' or 'principal-investigator'." });

export const User = Obj(
  {
    name: Type.String(),
    display_name: Nullable(Type.String()),
    admin: Type.Boolean({ description: 'A platform admin: users, projects, extensions, settings; a principal investigator of every project.' }),
    source: Type.Unsafe<'local' | 'oidc'>({ type: 'string', enum: ['local', 'oidc'], description: "'local' (a password here) or 'oidc' (signs in at the OpenID Connect issuer)." }),
    disabled: Type.Boolean(),
    must_change_password: Type.Boolean({ description: 'The password was set by someone else (the initial one, an admin): it must be changed before anything else.' }),
    created_at: DateTime(),
    last_sign_in_at: Nullable(DateTime()),
  },
  { $id: 'User', description: 'A user of the platform.' },
);
export type User = Static<typeof User>;

export const Membership = Obj({ project: Type.String(), role: Role }, { $id: 'Membership', description: "A project the user is a member of, with the user's role there." });
export type Membership = Static<typeof Membership>;

export const Me = Obj(
  {
    user: User,
    projects: Type.Array(Membership, { description: 'The projects the user may see (every project for an admin, as principal investigator).' }),
    via: Type.Unsafe<'session' | 'token' | 'run' | 'application' | 'auth-off'>({
      type: 'string',
      enum: ['session', 'token', 'run', 'application', 'auth-off'],
      description: "How this request was signed in: a browser session, an API token, a run's or an application instance's scoped token, or none because TESSERA_AUTH=off.",
    }),
    auth: Type.Unsafe<'on' | 'off'>({ type: 'string', enum: ['on', 'off'], description: "'off' when the server runs with TESSERA_AUTH=off (one user, loopback only)." }),
  },
  { $id: 'Me', description: 'Who the caller is.' },
);
export type Me = Static<typeof Me>;

export const SignIn = Type.Object(
  { username: Type.String({ minLength: 1, maxLength: 256 }), password: Type.String({ minLength: 1, maxLength: 1024 }) },
  { additionalProperties: false },
);
export type SignIn = Static<typeof SignIn>;

export const SignInLink = Type.Object({ code: Type.String({ minLength: 1, maxLength: 256, description: 'The code of the single-use link the console printed.' }) }, { additionalProperties: false });

export const ChangePassword = Type.Object(
  {
    current_password: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description: "Required, except in a session the console's sign-in link started while the password must change: who opened the link chooses the first password without knowing the generated one.",
      }),
    ),
    new_password: Type.String({ minLength: 12, maxLength: 1024, description: 'At least 12 characters, not the current one.' }),
  },
  { additionalProperties: false },
);
export type ChangePassword = Static<typeof ChangePassword>;

export const AuthProviders = Obj(
  {
    local: Type.Boolean({ description: 'Users may sign in with a name and password.' }),
    oidc: Nullable(Obj({ name: Type.String({ description: 'What the sign-in page calls the issuer (TESSERA_OIDC_NAME).' }), start_url: Type.String({ description: 'Where the browser goes to sign in there.' }) })),
    auth: Type.Unsafe<'on' | 'off'>({ type: 'string', enum: ['on', 'off'] }),
  },
  { $id: 'AuthProviders', description: 'How one may sign in here.' },
);
export type AuthProviders = Static<typeof AuthProviders>;

export const ApiToken = Obj(
  {
    id: Type.String(),
    name: Type.String(),
    user: Type.String(),
    prefix: Type.String({ description: 'The first characters of the token, to recognise it; the token itself is shown once, when created.' }),
    created_at: DateTime(),
    expires_at: Nullable(DateTime()),
    last_used_at: Nullable(DateTime()),
  },
  { $id: 'ApiToken', description: 'An API token, for the CLI and scripts: sent as `Authorization: Bearer <token>`.' },
);
export type ApiToken = Static<typeof ApiToken>;

export const CreatedToken = Obj({ ...ApiToken.properties, token: Type.String({ description: 'The token: shown this once, never again.' }) }, { $id: 'CreatedToken' });
export type CreatedToken = Static<typeof CreatedToken>;

export const CreateToken = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128, description: 'What it is for ("laptop CLI", "nightly export").' }),
    expires_in_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650, description: 'Days until it stops working (default: never).' })),
  },
  { additionalProperties: false },
);
export type CreateToken = Static<typeof CreateToken>;

export const CreateUser = Type.Object(
  {
    name: Type.String({ pattern: USER_NAME_PATTERN, description: '1-64 letters, digits, ".", "_", "-", "@".' }),
    display_name: Type.Optional(Type.String({ maxLength: 256 })),
    password: Type.Optional(Type.String({ minLength: 12, maxLength: 1024, description: 'At least 12 characters; without it, one is generated and answered once. The user must change it at first sign-in.' })),
    admin: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type CreateUser = Static<typeof CreateUser>;

export const CreatedUser = Obj({ user: User, password: Nullable(Type.String({ description: 'The generated initial password, answered this once; null when one was given.' })) }, { $id: 'CreatedUser' });

export const UpdateUser = Type.Object(
  {
    display_name: Type.Optional(Type.String({ maxLength: 256 })),
    admin: Type.Optional(Type.Boolean()),
    disabled: Type.Optional(Type.Boolean({ description: 'A disabled user cannot sign in; their sessions and tokens stop working.' })),
    password: Type.Optional(Type.String({ minLength: 12, maxLength: 1024, description: 'A new password the user must change at next sign-in.' })),
  },
  { additionalProperties: false },
);
export type UpdateUser = Static<typeof UpdateUser>;

export const Member = Obj({ user: Type.String(), display_name: Nullable(Type.String()), role: Role, added_at: DateTime() }, { $id: 'Member', description: 'A member of a project.' });
export type Member = Static<typeof Member>;

export const SetMember = Type.Object({ role: Role }, { additionalProperties: false });

export const AuditEntry = Obj(
  {
    id: Type.Integer(),
    at: DateTime(),
    actor: Nullable(Type.String({ description: 'The user, or null (an unknown name at a failed sign-in is in `target`).' })),
    action: Type.String({ description: 'What happened: sign-in, sign-in-failed, run-triggered, data-uploaded, data-deleted, extension-installed, member-set, token-created, ...' }),
    project: Nullable(Type.String()),
    target: Nullable(Type.String({ description: 'What it was done to: a run, a series, an extension, a user, a token name.' })),
    outcome: Type.Unsafe<'ok' | 'refused'>({ type: 'string', enum: ['ok', 'refused'] }),
    address: Nullable(Type.String({ description: 'The client address.' })),
    details: Nullable(Type.Record(Type.String(), Type.Unknown())),
  },
  { $id: 'AuditEntry', description: 'One entry of the audit log.' },
);
export type AuditEntry = Static<typeof AuditEntry>;

const UserParams = Type.Object({ name: Type.String({ maxLength: 256 }) });
const MemberParams = Type.Object({ name: Type.String({ description: "The project's name." }), user: Type.String({ maxLength: 256 }) });
const ProjectParams = Type.Object({ name: Type.String({ description: "The project's name." }) });

const tags = ['access'];
const inPath = { in: 'path', name: 'name' } as const;
const none = { in: 'none' } as const;

/** Signing in and out, who the caller is, API tokens, users, project members and the audit log. */
export const authRoutes = {
  providers: defineRoute({
    method: 'GET',
    url: '/api/auth/providers',
    operationId: 'authProviders',
    tags,
    summary: 'How one may sign in here (for the sign-in page)',
    project: none,
    access: PUBLIC,
    response: { 200: AuthProviders, ...errors(500) },
  }),
  signIn: defineRoute({
    method: 'POST',
    url: '/api/auth/sign-in',
    operationId: 'signIn',
    tags,
    summary: 'Sign in with a name and password: sets the session cookie',
    description: '401: wrong name or password (which one is not said). 429: too many failed sign-ins for this name or from this address; wait and try again.',
    project: none,
    access: PUBLIC,
    body: SignIn,
    response: { 200: Me, ...errors(400, 401, 413, 415, 429, 500) },
  }),
  signInLink: defineRoute({
    method: 'POST',
    url: '/api/auth/link',
    operationId: 'signInWithLink',
    tags,
    summary: "Sign in with the code of the console's single-use link (valid 15 minutes): sets the session cookie",
    project: none,
    access: PUBLIC,
    body: SignInLink,
    response: { 200: Me, ...errors(400, 401, 413, 415, 429, 500) },
  }),
  signOut: defineRoute({
    method: 'POST',
    url: '/api/auth/sign-out',
    operationId: 'signOut',
    tags,
    summary: 'Sign out: ends the session and clears its cookie',
    project: none,
    access: PUBLIC,
    response: { 204: NoContent('Signed out.'), ...errors(400, 413, 415, 500) },
  }),
  me: defineRoute({
    method: 'GET',
    url: '/api/auth/me',
    operationId: 'me',
    tags,
    summary: 'Who the caller is, and their projects with their roles',
    project: none,
    access: SIGNED_IN,
    response: { 200: Me, ...errors(401, 500) },
  }),
  changePassword: defineRoute({
    method: 'POST',
    url: '/api/auth/password',
    operationId: 'changePassword',
    tags,
    summary: "Change the caller's password (ends their other sessions)",
    project: none,
    access: SIGNED_IN,
    body: ChangePassword,
    response: { 204: NoContent('Changed.'), ...errors(400, 401, 403, 413, 415, 429, 500) },
  }),
  oidcStart: defineRoute({
    method: 'GET',
    url: '/api/auth/oidc/start',
    operationId: 'oidcStart',
    tags,
    summary: 'Start signing in at the OpenID Connect issuer (redirects there; authorization code with PKCE)',
    project: none,
    access: PUBLIC,
    querystring: Type.Object({ next: Type.Optional(Type.String({ maxLength: 2048, description: 'A path of this server to go to afterwards.' })) }),
    response: { 302: Media([], 'To the issuer.'), ...errors(400, 404, 500, 502) },
  }),
  oidcCallback: defineRoute({
    method: 'GET',
    url: '/api/auth/oidc/callback',
    operationId: 'oidcCallback',
    tags,
    summary: "The issuer's redirect back: checks the answer, signs in and redirects to the UI",
    project: none,
    access: PUBLIC,
    querystring: Type.Object({}, { additionalProperties: Type.String() }),
    response: { 302: Media([], 'To the UI, signed in.'), ...errors(400, 401, 403, 404, 500, 502) },
  }),
  listTokens: defineRoute({
    method: 'GET',
    url: '/api/tokens',
    operationId: 'listTokens',
    tags,
    summary: "The caller's API tokens (an admin may add `all=true` for everyone's)",
    project: none,
    access: SIGNED_IN,
    querystring: Type.Object({ all: Type.Optional(Type.Boolean()), ...PageParams(100, 1000) }),
    response: { 200: PageOf(ApiToken), ...errors(400, 401, 500) },
  }),
  createToken: defineRoute({
    method: 'POST',
    url: '/api/tokens',
    operationId: 'createToken',
    tags,
    summary: 'Create an API token with the rights of the caller; the token is answered once',
    project: none,
    access: SIGNED_IN,
    body: CreateToken,
    response: { 201: CreatedToken, ...errors(400, 401, 403, 413, 415, 500) },
  }),
  revokeToken: defineRoute({
    method: 'DELETE',
    url: '/api/tokens/:id',
    operationId: 'revokeToken',
    tags,
    summary: "Revoke one of the caller's API tokens (an admin: anyone's)",
    project: none,
    access: SIGNED_IN,
    params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
    response: { 204: NoContent('Revoked.'), ...errors(400, 401, 404, 413, 415, 500) },
  }),
  listUsers: defineRoute({
    method: 'GET',
    url: '/api/users',
    operationId: 'listUsers',
    tags,
    summary: 'List users',
    project: none,
    access: ADMIN,
    querystring: Type.Object({ ...PageParams(1000, 1000) }),
    response: { 200: PageOf(User), ...errors(400, 401, 403, 500) },
  }),
  createUser: defineRoute({
    method: 'POST',
    url: '/api/users',
    operationId: 'createUser',
    tags,
    summary: 'Create a local user',
    project: none,
    access: ADMIN,
    body: CreateUser,
    response: { 201: CreatedUser, ...errors(400, 401, 403, 409, 413, 415, 500) },
  }),
  updateUser: defineRoute({
    method: 'PATCH',
    url: '/api/users/:name',
    operationId: 'updateUser',
    tags,
    summary: "Change a user: admin or not, disabled or not, a new password",
    project: none,
    access: ADMIN,
    params: UserParams,
    body: UpdateUser,
    response: { 200: User, ...errors(400, 401, 403, 404, 409, 413, 415, 500) },
  }),
  deleteUser: defineRoute({
    method: 'DELETE',
    url: '/api/users/:name',
    operationId: 'deleteUser',
    tags,
    summary: 'Delete a user with their sessions, tokens and memberships (their runs and data stay in their projects)',
    project: none,
    access: ADMIN,
    params: UserParams,
    response: { 204: NoContent('Deleted.'), ...errors(400, 401, 403, 404, 409, 413, 415, 500) },
  }),
  listMembers: defineRoute({
    method: 'GET',
    url: '/api/projects/:name/members',
    operationId: 'listMembers',
    tags,
    summary: "A project's members with their roles",
    project: inPath,
    access: SCIENTIST,
    params: ProjectParams,
    response: { 200: PageOf(Member), ...errors(400, 401, 404, 500) },
  }),
  setMember: defineRoute({
    method: 'PUT',
    url: '/api/projects/:name/members/:user',
    operationId: 'setMember',
    tags,
    summary: 'Add a user to the project, or change their role',
    project: inPath,
    access: PRINCIPAL_INVESTIGATOR,
    params: MemberParams,
    body: SetMember,
    response: { 200: Member, ...errors(400, 401, 403, 404, 413, 415, 500) },
  }),
  removeMember: defineRoute({
    method: 'DELETE',
    url: '/api/projects/:name/members/:user',
    operationId: 'removeMember',
    tags,
    summary: 'Remove a user from the project',
    project: inPath,
    access: PRINCIPAL_INVESTIGATOR,
    params: MemberParams,
    response: { 204: NoContent('Removed.'), ...errors(400, 401, 403, 404, 409, 413, 415, 500) },
  }),
  audit: defineRoute({
    method: 'GET',
    url: '/api/audit',
    operationId: 'listAudit',
    tags,
    summary: 'The audit log, newest first',
    project: none,
    access: ADMIN,
    querystring: Type.Object({
      actor: Type.Optional(Type.String({ maxLength: 256 })),
      action: Type.Optional(Type.String({ maxLength: 64 })),
      project: Type.Optional(Type.String({ maxLength: 64 })),
      ...PageParams(100, 1000),
    }),
    response: { 200: PageOf(AuditEntry), ...errors(400, 401, 403, 500) },
  }),
} as const;
