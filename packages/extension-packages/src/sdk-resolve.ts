import Module, { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

let registered = false;

type ResolveFilename = (request: string, ...rest: unknown[]) => string;

/**
 * Lets workflow modules in any folder import `@tessera/sdk`: where Node finds no
 * installed SDK (an extension folder outside the repository), the import resolves to
 * the SDK of this Tessera. ES modules go through a resolve hook; a .ts file with no
 * package.json above it is loaded as CommonJS, whose resolver is wrapped the same way
 * (Node has no hook for require before v22). A package.json without `"type": "module"`
 * takes a path neither reaches; the loader then says to add it. Idempotent.
 */
export function registerSdkResolution(): void {
  if (registered) return;
  registered = true;
  const sdkFile = createRequire(import.meta.url).resolve('@tessera/sdk');
  register(new URL('./sdk-resolve-hooks.mjs', import.meta.url), { data: { sdkUrl: pathToFileURL(sdkFile).href } });
  const cjs = Module as unknown as { _resolveFilename: ResolveFilename };
  const original = cjs._resolveFilename;
  cjs._resolveFilename = function resolveSdk(this: unknown, request: string, ...rest: unknown[]): string {
    try {
      return original.call(this, request, ...rest);
    } catch (err) {
      if (request === '@tessera/sdk') return sdkFile;
      throw err;
    }
  };
}
