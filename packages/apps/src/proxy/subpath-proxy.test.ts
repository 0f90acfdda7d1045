import { describe, expect, it } from 'vitest';
import { confineCookie, parseAppPath } from './subpath-proxy.ts';

describe('parseAppPath', () => {
  it('splits an application URL into project, instance, prefix and the rest (query kept)', () => {
    expect(parseAppPath('/applications/project/admin/release/viewer/a/b?x=1&y=%2F')).toEqual({
      project: 'admin', instance: 'viewer', prefix: '/applications/project/admin/release/viewer', rest: '/a/b?x=1&y=%2F',
    });
    expect(parseAppPath('/applications/project/admin/release/viewer')).toMatchObject({ rest: '/' });
  });

  it('leaves other paths to the API', () => {
    expect(parseAppPath('/api/health')).toBeUndefined();
    expect(parseAppPath('//applications/project/a/release/b/')).toBeUndefined();
    expect(parseAppPath('http://x/applications/project/a/release/b/')).toBeUndefined();
  });

  it.each([
    '/applications/project/admin/release/v/%2e%2e/other/',
    '/applications/project/admin/release/v/../other/',
    '/applications/project/admin/release/v/./x',
    '/applications/project/admin/release/v%2f..%2fother/',
    '/applications/project/admin/release/v/a%5cb',
    '/applications/project/admin/release/v/a\\b',
    '/applications/project/admin/release/v/%zz',
    '/applications/project/admin/other/v/',
    '/applications/project/admin/release/',
  ])('refuses %s', (path) => {
    expect(parseAppPath(path)).toBe('bad');
  });
});

describe('confineCookie', () => {
  const prefix = '/applications/project/admin/release/v';
  it.each([
    ['a=1; Path=/', `a=1; Path=${prefix}/`],
    ['a=1; path=/sub; HttpOnly', `a=1; path=${prefix}/sub; HttpOnly`],
    ['a=1', `a=1; Path=${prefix}/`],
    ['a=1; Secure; Path=/x/y', `a=1; Secure; Path=${prefix}/x/y`],
    ['a=1; Domain=example.org; Path=/', `a=1; Path=${prefix}/`],
    ['a=1; Path=/x; Path=/', `a=1; Path=${prefix}/x`],
  ])('strip: %s -> %s', (cookie, expected) => {
    expect(confineCookie(cookie, prefix, true)).toBe(expected);
  });

  it.each([
    ['a=1; Path=/', `a=1; Path=${prefix}/`],
    ['a=1', `a=1; Path=${prefix}/`],
    [`a=1; Path=${prefix}/lab; HttpOnly`, `a=1; Path=${prefix}/lab; HttpOnly`],
    [`a=1; Path=${prefix}`, `a=1; Path=${prefix}`],
    ['a=1; Path=/applications/project/admin/release/other/', `a=1; Path=${prefix}/`],
    [`a=1; Path=${prefix}x`, `a=1; Path=${prefix}/`],
    [`a=1; Path=${prefix}/../other`, `a=1; Path=${prefix}/`],
    ['a=1; domain=.example.org; Path', `a=1; Path=${prefix}/`],
    ['a=1; Path=/api', `a=1; Path=${prefix}/`],
  ])('subpath: %s -> %s', (cookie, expected) => {
    expect(confineCookie(cookie, prefix, false)).toBe(expected);
  });
});
