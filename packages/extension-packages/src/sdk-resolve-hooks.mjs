// Module resolution hooks (node:module register): an extension folder outside the
// repository has no node_modules, so `import ... from '@tessera/sdk'` would not
// resolve there. When Node's own resolution fails for the SDK, it resolves to the
// SDK of the Tessera that loads the workflow.
let sdkUrl;

export function initialize(data) {
  sdkUrl = data.sdkUrl;
}

export async function resolve(specifier, context, nextResolve) {
  if (specifier !== '@tessera/sdk') return nextResolve(specifier, context);
  try {
    return await nextResolve(specifier, context);
  } catch {
    return nextResolve(sdkUrl, context);
  }
}
