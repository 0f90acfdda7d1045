import { afterEach, describe, expect, it } from 'vitest';
import { Client, get, P, proxy, useProxyTestBed } from './__fixtures__/proxy-test-bed.ts';

// What an app answers may not reach beyond its instance (issue 14): no Service-Worker-Allowed,
// cookies confined to the instance's path and without a Domain, on the fast path and on
// Node's (an HTTP/1.0 request is handed to Node's server, where SubpathProxy.handle answers it).
useProxyTestBed();

const confined = [`a=1; Path=${P}/a/`, `b=2; Path=${P}/a/`, `c=3; Path=${P}/a/x; HttpOnly`].join('\n');

describe('the proxy confines an app to its instance', () => {
  afterEach(() => {
    proxy.admit = undefined;
  });

  it('on the fast path: drops Service-Worker-Allowed and confines Set-Cookie', async () => {
    const before = proxy.fastExchanges;
    const c = new Client().send(get(`${P}/a/sw`));
    const [a] = await c.answers(1);
    expect(proxy.fastExchanges).toBe(before + 1);
    expect(a!.status).toBe(200);
    expect(a!.headers['service-worker-allowed']).toBeUndefined();
    expect(a!.headers['set-cookie']).toBe(confined);
    c.close();
  });

  it('on Node\'s path: the same', async () => {
    const before = proxy.fastExchanges;
    const c = new Client().send(`GET ${P}/a/sw HTTP/1.0\r\nHost: platform.test\r\n\r\n`);
    await c.until(() => c.closed);
    expect(proxy.fastExchanges).toBe(before);
    expect(c.text).toMatch(/^HTTP\/1\.1 200/);
    expect(c.text.toLowerCase()).not.toContain('service-worker-allowed');
    const cookies = c.text.split('\r\n').filter((l) => l.toLowerCase().startsWith('set-cookie:')).map((l) => l.slice(11).trim());
    expect(cookies.join('\n')).toBe(confined);
  });

  it('hands a request the platform does not admit (its Host, its Origin) to the HTTP server, which answers it', async () => {
    const asked: string[] = [];
    proxy.admit = (method, h) => {
      asked.push(`${method} ${h.host} ${h.origin} ${h['sec-fetch-site']}`);
      return h.host !== 'evil.example';
    };
    const before = proxy.fastExchanges;
    const c = new Client().send(`POST ${P}/a/hello HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\nSec-Fetch-Site: cross-site\r\nContent-Length: 0\r\n\r\n`);
    const [a] = await c.answers(1);
    // The test bed's HTTP server has no checks: the request reached the app through Node's path.
    expect(a!.status).toBe(200);
    expect(proxy.fastExchanges).toBe(before);
    expect(asked).toEqual(['POST evil.example http://evil.example cross-site']);
    c.close();
  });
});
