/**
 * Writes the published JSON Schemas under docs/reference/ from their TypeBox
 * sources. Run after changing a schema:
 *
 *   npx tsx scripts/gen-schemas.ts           # write the files
 *   npx tsx scripts/gen-schemas.ts --check   # exit 1 if a file is out of date
 *
 * packages/model/src/published-schemas.test.ts fails when the committed files differ.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExtensionManifestSchema, MANIFEST_FILE } from '@tessera/extension-packages';
import { DAG_SPEC_VERSION, DagSpecSchema } from '@tessera/model';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The dialect the schemas are written in: draft-07, the default of Ajv (which
 * Tessera validates with), so `new Ajv().compile(schema)` works as is.
 */
export const JSON_SCHEMA_DIALECT = 'http://json-schema.org/draft-07/schema#';

export interface PublishedSchema {
  /** Path relative to the repository root. */
  path: string;
  /** The exact file content: pretty-printed JSON with a trailing newline. */
  text: string;
}

function publish(path: string, source: object, title: string, description: string): PublishedSchema {
  // JSON.stringify drops TypeBox's symbol keys; the header goes first for readers.
  const { $id, ...rest } = JSON.parse(JSON.stringify(source)) as { $id?: string } & Record<string, unknown>;
  const schema = { $schema: JSON_SCHEMA_DIALECT, ...($id ? { $id } : {}), title, description, ...rest };
  return { path, text: `${JSON.stringify(schema, null, 2)}\n` };
}

/** Every schema published under docs/reference/, rendered from the TypeBox sources. */
export function renderSchemas(): PublishedSchema[] {
  return [
    publish(
      'docs/reference/dag-spec.schema.json',
      DagSpecSchema,
      `Tessera DAG spec (spec_version ${DAG_SPEC_VERSION})`,
      'The JSON document a Tessera workflow compiles to, and the only thing the engine runs: forms, tasks, dependencies, ' +
        'trigger rules, retries and resources. Generated from packages/model/src/dag-spec.schema.ts by scripts/gen-schemas.ts; do not edit.',
    ),
    publish(
      'docs/reference/extension-manifest.schema.json',
      ExtensionManifestSchema,
      'Tessera extension manifest',
      `The ${MANIFEST_FILE} file at the root of an extension folder: its name, version, kind and the workflows it provides. ` +
        'Generated from packages/extension-packages/src/extension-manifest.schema.ts by scripts/gen-schemas.ts; do not edit.',
    ),
  ];
}

/** The published files whose content differs from what the TypeBox schemas produce. */
export async function outdatedSchemas(root = REPO_ROOT): Promise<string[]> {
  const outdated: string[] = [];
  for (const { path, text } of renderSchemas()) {
    const current = await readFile(join(root, path), 'utf8').catch(() => undefined);
    if (current !== text) outdated.push(path);
  }
  return outdated;
}

async function main(args: string[]): Promise<number> {
  if (args.includes('--check')) {
    const outdated = await outdatedSchemas();
    for (const path of outdated) console.error(`${path} is out of date; run \`npx tsx scripts/gen-schemas.ts\``);
    return outdated.length === 0 ? 0 : 1;
  }
  for (const { path, text } of renderSchemas()) {
    const file = join(REPO_ROOT, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, text);
    console.log(`wrote ${relative(process.cwd(), file) || file}`);
  }
  return 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
