import { createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Configuration } from 'oidc-provider';

/** An account of the test issuer: the claims it releases. */
export type TestAccount = Record<string, unknown> & { preferred_username?: string; groups?: string[] };

export interface TestClient {
  client_id: string;
  client_secret: string;
  redirect_uris: string[];
}

/**
 * A real OpenID provider for tests (the `oidc-provider` package, certified), on a free
 * loopback port. Its issuer URL is a small front server that forwards to the provider
 * and can (for one answer) rewrite the token endpoint's answer, as a broken or hostile
 * network path would, or be down. Interactions (login, consent) are answered at once
 * for `nextAccount`, or refused with access_denied when `denyNext` is set.
 */
export class TestIssuer {
  readonly accounts = new Map<string, TestAccount>();
  /** The account the next login signs in as (its sub). */
  nextAccount = '';
  /** Refuse the next interaction with access_denied (the user declined). */
  denyNext = false;
  /** While true, the issuer is unreachable: every connection is closed at once. */
  down = false;
  /** Rewrites the next successful token endpoint answer (then cleared). */
  rewriteNextToken: ((body: Record<string, unknown>) => Record<string, unknown>) | undefined;
  readonly issuer: string;
  readonly #privateKey: KeyObject;
  readonly #kid = 'test-signing-key';
  #provider: Provider | undefined;
  #providerServer: Server | undefined;
  readonly #front: Server;

  private constructor(front: Server, privateKey: KeyObject) {
    this.#front = front;
    this.#privateKey = privateKey;
    this.issuer = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  }

  /** Listens first (so that the issuer URL is known), then `start` creates the provider with its clients. */
  static async listen(): Promise<TestIssuer> {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ready: { issuer?: TestIssuer } = {};
    const front = createServer((req, res) => {
      if (!ready.issuer) return void req.socket.destroy();
      void ready.issuer.front(req, res).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500).end(err.message);
        else res.destroy(err);
      });
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    ready.issuer = new TestIssuer(front, privateKey);
    return ready.issuer;
  }

  async start(clients: TestClient[]): Promise<void> {
    const config: Configuration = {
      clients: clients.map((c) => ({ ...c, grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' })),
      jwks: { keys: [{ ...(this.#privateKey.export({ format: 'jwk' }) as Record<string, string>), kid: this.#kid, alg: 'RS256', use: 'sig' }] as never },
      findAccount: async (_ctx, sub) => {
        const account = this.accounts.get(sub);
        return account ? { accountId: sub, claims: async () => ({ ...account, sub }) } : undefined;
      },
      // Keycloak releases groups with the profile scope when a group mapper is set on the client.
      claims: { openid: ['sub'], profile: ['preferred_username', 'name', 'groups'], email: ['email', 'email_verified'] },
      features: { devInteractions: { enabled: false } },
      interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
      pkce: { required: () => true },
      cookies: { keys: ['a cookie key of the test issuer'] },
      ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
      renderError: async (ctx, out) => {
        ctx.type = 'application/json';
        ctx.body = out;
      },
    };
    this.#provider = new Provider(this.issuer, config);
    const handle = this.#provider.callback();
    this.#providerServer = createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => this.#providerServer!.listen(0, '127.0.0.1', resolve));
  }

  get provider(): Provider {
    return this.#provider!;
  }

  /** Signs an ID token with the issuer's own key (claims as given): what the issuer would sign. */
  signIdToken(claims: Record<string, unknown>): string {
    const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    const input = `${enc({ alg: 'RS256', typ: 'JWT', kid: this.#kid })}.${enc(claims)}`;
    return `${input}.${createSign('RSA-SHA256').update(input).sign(this.#privateKey).toString('base64url')}`;
  }

  async close(): Promise<void> {
    this.#front.closeAllConnections();
    this.#providerServer?.closeAllConnections();
    await Promise.all([new Promise((r) => this.#front.close(r)), this.#providerServer ? new Promise((r) => this.#providerServer!.close(r)) : undefined]);
  }

  private async front(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.down || !this.#provider) return void req.socket.destroy();
    const path = new URL(req.url ?? '/', this.issuer).pathname;
    if (path.startsWith('/interaction/')) return this.#interact(req, res);
    const upstream = httpRequest(
      { host: '127.0.0.1', port: (this.#providerServer!.address() as AddressInfo).port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        const rewrite = this.rewriteNextToken;
        if (path !== '/token' || !rewrite || answer.statusCode !== 200) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        this.rewriteNextToken = undefined;
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const body = Buffer.from(JSON.stringify(rewrite(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>)));
          res.writeHead(200, { ...answer.headers, 'content-length': String(body.length) });
          res.end(body);
        });
      },
    );
    upstream.on('error', (err) => res.destroy(err));
    req.pipe(upstream);
  }

  async #interact(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const provider = this.#provider!;
    const details = await provider.interactionDetails(req, res);
    if (this.denyNext) {
      this.denyNext = false;
      return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user declined' }, { mergeWithLastSubmission: false });
    }
    if (details.prompt.name === 'login') {
      return provider.interactionFinished(req, res, { login: { accountId: this.nextAccount } }, { mergeWithLastSubmission: false });
    }
    const grant = details.grantId
      ? (await provider.Grant.find(details.grantId))!
      : new provider.Grant({ accountId: details.session!.accountId, clientId: String(details.params.client_id) });
    const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
}

interface Cookie {
  name: string;
  value: string;
  host: string;
  path: string;
}

/**
 * A browser without a browser: fetch with redirects followed by hand and a cookie jar
 * (cookies by host name, whatever the port, and path, as browsers keep them).
 */
export class TestBrowser {
  readonly #cookies = new Map<string, Cookie>();

  async get(url: string | URL): Promise<Response> {
    const u = new URL(url);
    const cookie = this.cookieHeader(u);
    const res = await fetch(u, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    this.keep(u, res.headers.getSetCookie());
    return res;
  }

  /** GETs `url`, then follows redirects until one goes to a URL beginning with `until`; answers that URL (not requested). */
  async followUntil(url: string | URL, until: string, max = 12): Promise<URL> {
    let at = new URL(url);
    for (let i = 0; i < max; i++) {
      if (at.href.startsWith(until)) return at;
      const res = await this.get(at);
      const location = res.headers.get('location');
      if (res.status < 300 || res.status > 399 || !location) throw new Error(`expected a redirect from ${at.href}, got ${res.status}: ${(await res.text()).slice(0, 500)}`);
      at = new URL(location, at);
    }
    throw new Error(`no redirect to ${until} after ${max} steps`);
  }

  cookie(host: string, name: string): string | undefined {
    return [...this.#cookies.values()].find((c) => c.host === host && c.name === name)?.value;
  }

  cookieHeader(u: URL): string {
    return [...this.#cookies.values()]
      .filter((c) => c.host === u.hostname && (u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  keep(u: URL, setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair, ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      const attr = (key: string): string | undefined => attributes.find((a) => a.toLowerCase().startsWith(`${key}=`))?.slice(key.length + 1);
      const path = attr('path') ?? (u.pathname.replace(/\/[^/]*$/, '') || '/');
      const key = `${u.hostname}|${path}|${name}`;
      const expires = attr('expires');
      if (attr('max-age') === '0' || (expires !== undefined && Date.parse(expires) <= Date.now()) || value === '') this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, host: u.hostname, path });
    }
  }
}
