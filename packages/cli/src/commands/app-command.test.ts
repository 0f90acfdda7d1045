import { describe, expect, it } from 'vitest';
import { openUrl } from './app-command.ts';

describe('where the CLI says an instance is opened', () => {
  it("gives the instance's path on the platform, which signs the browser in to the instance's own host", () => {
    expect(openUrl('http://127.0.0.1:8080', 'http://ada--admin.localhost:8081/applications/project/admin/release/ada/')).toBe('http://127.0.0.1:8080/applications/project/admin/release/ada/');
    // With access control off the API gives a path on the platform's port.
    expect(openUrl('http://localhost:8080', '/applications/project/admin/release/ada/')).toBe('http://localhost:8080/applications/project/admin/release/ada/');
    expect(openUrl('https://tessera.example.org', 'https://ada--lab.apps.example-apps.org/applications/project/lab/release/ada/?x=1')).toBe('https://tessera.example.org/applications/project/lab/release/ada/?x=1');
  });
});
