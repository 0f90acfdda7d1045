import semver from 'semver';
import { PLATFORM_VERSION } from '@tessera/model';
import type { ExtensionManifest } from '../extension-manifest.schema.ts';
import type { LoadedExtension } from '../extension-loader.ts';
import type { ExtensionInstallsTable, InstallState } from './extension-migrations.ts';

/** Where an extension stands in the catalog (the contract's `Extension.state`). */
export type ExtensionState = 'not_installed' | InstallState;

/** One version of an extension the catalog holds (the contract's `ExtensionVersion`). */
export interface ExtensionVersion {
  version: string;
  source: 'builtin' | 'package' | 'folder';
  /** Tessera versions it asks for (manifest `platform`). */
  platform: string | null;
  /** Why this version cannot be installed here (platform version), or null. */
  problem: string | null;
  sha256: string | null;
  bytes: number | null;
  uploaded_at: string | null;
}

/** A catalog entry (the contract's `Extension`): what an extension is, its versions, and its install. */
export interface Extension {
  name: string;
  kind: ExtensionManifest['kind'];
  title: string;
  description: string;
  documentation: string | null;
  keywords: NonNullable<ExtensionManifest['keywords']>;
  parameters: NonNullable<ExtensionManifest['parameters']>;
  dependencies: Record<string, string>;
  images: string[];
  versions: ExtensionVersion[];
  /** The newest version that can be installed here. */
  latest: string | null;
  state: ExtensionState;
  installed: { version: string; source: 'builtin' | 'package' | 'folder'; params: Record<string, unknown>; updated_at: string } | null;
  /** Why it is in state error (or why its last upgrade failed), else null. */
  error: string | null;
  /** What an install in progress is doing. */
  progress: string | null;
  /** Loaded from a folder under TESSERA_EXTENSIONS_DIRS: always installed, as it is on disk. */
  linked: string | null;
  workflows: string[];
}

/** The answer of an upload (the contract's `ExtensionPackage`). */
export interface ExtensionPackage {
  name: string;
  version: string;
  kind: ExtensionManifest['kind'];
  sha256: string;
  bytes: number;
  /** A package of the same name and version, with other bytes, was there before. */
  replaced: boolean;
}

/** A version the catalog can install: a built-in folder or an uploaded package. */
export interface Available {
  version: string;
  source: 'builtin' | 'package';
  /** Extension folder. */
  dir: string;
  /** The unpacked package (package source). */
  packageDir?: string;
  manifest: ExtensionManifest;
  sha256: string;
  bytes: number | null;
  uploadedAt: number | null;
}

/** What was installed before an install began (upgrade, downgrade, reconfigure), restored if it fails. */
export interface PreviousInstall {
  /** Image name -> the id it pointed at before the install began. */
  image_ids?: Record<string, string>;
  version: string;
  source: 'builtin' | 'package';
  dir: string;
  sha256: string;
  params_json: string;
  images_json: string;
}

/** What an entry is built from: the versions available, the install, a linked folder, what the registry loaded, a job's progress. */
export interface EntryParts {
  name: string;
  available: Available[];
  row: ExtensionInstallsTable | undefined;
  linked: LoadedExtension | undefined;
  loaded: LoadedExtension | undefined;
  progress: string | undefined;
}

/** A catalog entry from its parts. */
export function catalogEntry({ name, available, row, linked, loaded, progress }: EntryParts): Extension {
  const versions: ExtensionVersion[] = available.map((a) => ({
    version: a.version,
    source: a.source,
    platform: a.manifest.platform ?? null,
    problem: platformProblem(a.manifest),
    sha256: a.sha256 || null,
    bytes: a.bytes,
    uploaded_at: a.uploadedAt ? new Date(a.uploadedAt).toISOString() : null,
  }));
  if (linked) versions.unshift({ version: linked.manifest.version, source: 'folder', platform: linked.manifest.platform ?? null, problem: null, sha256: null, bytes: null, uploaded_at: null });
  const shown = linked?.manifest ?? available.find((a) => row && a.version === row.version && (a.source !== 'package' || a.sha256 === row.sha256))?.manifest ?? available[0]?.manifest;
  return {
    name,
    kind: shown?.kind ?? 'workflow',
    title: shown?.title ?? name,
    description: shown?.description ?? '',
    documentation: shown?.documentation ?? null,
    keywords: shown?.keywords ?? [],
    parameters: shown?.parameters ?? {},
    dependencies: shown?.dependencies ?? {},
    images: (shown?.images ?? []).map((i) => i.name),
    versions,
    latest: available.find((a) => !platformProblem(a.manifest))?.version ?? null,
    state: linked ? 'installed' : (row?.state ?? 'not_installed'),
    installed: linked
      ? { version: linked.manifest.version, source: 'folder', params: {}, updated_at: new Date(0).toISOString() }
      : row && row.state !== 'error'
        ? { version: row.version, source: row.source, params: JSON.parse(row.params_json) as Record<string, unknown>, updated_at: new Date(row.updated_at).toISOString() }
        : null,
    error: linked ? null : (row?.error ?? null),
    progress: progress ?? null,
    linked: linked?.dir ?? null,
    workflows: loaded?.workflows.map((w) => w.spec.id) ?? [],
  };
}

/** Newest version first; a version semver cannot read (refused today, but maybe stored before) sorts last instead of breaking the catalog. */
export function newestFirst(x: { version: string }, y: { version: string }): number {
  const a = semver.valid(x.version);
  const b = semver.valid(y.version);
  if (a && b) return semver.rcompare(a, b);
  return a ? -1 : b ? 1 : x.version.localeCompare(y.version);
}

/** Why a manifest cannot be installed on this Tessera, or null. */
export function platformProblem(m: ExtensionManifest): string | null {
  if (!m.platform || semver.satisfies(PLATFORM_VERSION, m.platform, { includePrerelease: true })) return null;
  return `it asks for Tessera ${m.platform}, and this is Tessera ${PLATFORM_VERSION}`;
}
