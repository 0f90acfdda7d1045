import { describe, expect, it } from 'vitest';
import { startServerProcess, killHard } from './__fixtures__/server-process.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exposureWarning, isLoopbackHost } from './exposure.ts';

describe('a server bound beyond loopback', () => {
  it('tells loopback addresses from the others', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '192.0.2.7', 'example.org', '128.0.0.1']) expect(isLoopbackHost(h), h).toBe(false);
    expect(exposureWarning('127.0.0.1', { http: 8080, dicom: 11112 })).toBeUndefined();
    // With TLS, what is left to say is the DICOM port's; with its senders restricted everywhere, nothing.
    expect(exposureWarning('0.0.0.0', { http: 8443, dicom: 11112 }, { tls: true, dicomRefusesUnknown: false })).toMatch(/^tessera: WARNING: HOST=0\.0\.0\.0 serves HTTPS on port 8443 on every network interface of this machine\. DICOM on port 11112 takes C-STORE from any machine/);
    expect(exposureWarning('0.0.0.0', { http: 8443, dicom: 11112 }, { tls: true, dicomRefusesUnknown: true })).toBeUndefined();
    expect(exposureWarning('192.0.2.7', { http: 8080, dicom: undefined }, { tls: false, dicomRefusesUnknown: false })).toMatch(/on the network address 192\.0\.2\.7: passwords.*Use TLS.*operations\.md\)\.$/);
  });

  it('is started with a warning that says what is open and what to do', async () => {
    const home = await mkdtemp(join(tmpdir(), 'tessera-exposed-'));
    // Bound to every interface; the test talks to it on loopback only.
    const p = await startServerProcess({ TESSERA_HOME: home, HOST: '0.0.0.0', TESSERA_DEFAULT_EXTENSIONS: 'none' });
    try {
      const deadline = Date.now() + 10_000;
      while (!p.output().includes('WARNING') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(p.output()).toMatch(
        /tessera: WARNING: HOST=0\.0\.0\.0 serves plain HTTP on port \d+ \(.*\) on every network interface of this machine: passwords, session cookies, API tokens and images cross the network unencrypted.* Use TLS: set TESSERA_TLS_CERT and TESSERA_TLS_KEY .* or keep HOST=127\.0\.0\.1 behind a reverse proxy that serves HTTPS .* DICOM on port \d+ takes C-STORE from any machine that reaches it/,
      );
    } finally {
      await killHard(p);
      await rm(home, { recursive: true, force: true });
    }
  });
});
