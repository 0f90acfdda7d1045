/**
 * The extension package: one gzipped tar, `<name>-<version>.tgz`:
 *
 *   tessera-package.json          first entry: name, version, kind, checksums of every other entry, images
 *   extension/...                 the extension folder; its manifest names compiled DAG specs (.compiled/<id>.json)
 *   images/<n>.tar                `docker save` of each image the manifest builds (when embedded) or embeds from a registry
 *
 * Only files and folders with relative paths inside the archive are allowed; every
 * file's SHA-256 and size must match tessera-package.json, which must list them all.
 */
import type { ImagePullPolicy } from '@tessera/model';
import type { ExtensionManifest } from '../extension-manifest.schema.ts';

export const PACKAGE_META_FILE = 'tessera-package.json';
export const PACKAGE_FORMAT = 1;
/** Folder of the extension's files inside a package (and inside an installed version). */
export const PACKAGE_EXTENSION_DIR = 'extension';
export const PACKAGE_IMAGES_DIR = 'images';
/** Where `ext build` writes compiled DAG specs inside the extension folder of a package. */
export const COMPILED_DIR = '.compiled';

export interface PackageImage {
  /** Image name and tag the operators use. */
  name: string;
  /** The image id (sha256:...) it was built as. */
  id: string;
  /** `images/<n>.tar` in the package; absent when the image is not embedded (a development package: the engine must already hold `id`). */
  file?: string;
}

export interface PackageMeta {
  format: typeof PACKAGE_FORMAT;
  name: string;
  version: string;
  kind: ExtensionManifest['kind'];
  built_at: string;
  /** Tessera version that built it. */
  tessera: string;
  /** Every other entry of the archive: path -> checksum and size. */
  files: Record<string, { sha256: string; size: number }>;
  images: PackageImage[];
  /** Registry images the package does not hold: pulled at install and run, per their policy. For people reading the package; installs work it out from the workflows. */
  references?: { name: string; image_pull_policy: ImagePullPolicy }[];
}
