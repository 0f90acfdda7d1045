import { DEFAULT_IMAGE_PULL_POLICY, type DagSpec, type ImagePullPolicy } from '@tessera/model';
import type { ExtensionManifest } from '../extension-manifest.schema.ts';

/** A registry image an extension uses: pulled at install and run, per its pull policy, unless embedded. */
export interface ReferencedImage {
  name: string;
  /** The most eager policy of its uses: Always over IfNotPresent over Never. */
  image_pull_policy: ImagePullPolicy;
  /** Listed in the manifest with `embed: true`: `ext build` saves it into the package. */
  embed: boolean;
  /** Who uses it: "workflow <id> task <id>", "images[<n>]", "app". */
  used_by: string[];
}

/** The images of an extension: those it builds from a context, and the registry images it references. */
export interface ImagePlan {
  built: { index: number; name: string; context: string; dockerfile?: string }[];
  referenced: ReferencedImage[];
}

const EAGERNESS: Record<ImagePullPolicy, number> = { Never: 0, IfNotPresent: 1, Always: 2 };

/**
 * Sorts an extension's images: each manifest image with a `context` is built; every other
 * image (a manifest entry without context, an operator's image no entry builds, the app's
 * container image) is referenced by name and comes from its registry.
 */
export function imagePlan(manifest: ExtensionManifest, workflows: readonly DagSpec[]): ImagePlan {
  const built: ImagePlan['built'] = [];
  const referenced = new Map<string, ReferencedImage>();
  const use = (name: string, policy: ImagePullPolicy | undefined, by: string, embed = false): void => {
    const p = policy ?? manifest.image_pull_policy ?? DEFAULT_IMAGE_PULL_POLICY;
    const seen = referenced.get(name);
    if (!seen) {
      referenced.set(name, { name, image_pull_policy: p, embed, used_by: [by] });
      return;
    }
    if (EAGERNESS[p] > EAGERNESS[seen.image_pull_policy]) seen.image_pull_policy = p;
    seen.embed ||= embed;
    seen.used_by.push(by);
  };
  for (const [index, image] of (manifest.images ?? []).entries()) {
    if (image.context !== undefined) built.push({ index, name: image.name, context: image.context, ...(image.dockerfile ? { dockerfile: image.dockerfile } : {}) });
    else use(image.name, image.image_pull_policy, `images[${index}]`, image.embed ?? false);
  }
  const isBuilt = new Set(built.map((b) => b.name));
  for (const spec of workflows) {
    for (const task of spec.tasks) {
      if (task.container && !isBuilt.has(task.container.image)) use(task.container.image, task.container.image_pull_policy, `workflow ${spec.id} task ${task.id}`);
    }
  }
  const app = manifest.app?.container?.image;
  if (app && !isBuilt.has(app)) use(app, undefined, 'app');
  return { built, referenced: [...referenced.values()] };
}
