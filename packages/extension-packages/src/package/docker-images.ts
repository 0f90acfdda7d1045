import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { relative, resolve } from 'node:path';
import Docker from 'dockerode';
import { parseDockerHost, TesseraError, type ImagePullPolicy, type ProcessingContainer } from '@tessera/model';
import { readProcessingContainerFromImage } from '../task-api/processing-container-source.ts';

/** What a pull did: the engine pulled now; it did not hold the image before. */
export interface EnsuredImage {
  pulled: boolean;
  wasAbsent: boolean;
}

/**
 * Pulls a registry image per its policy, with the configured credentials: the engine's
 * `ensureImage` (@tessera/engine), handed in by whoever may use the engine (the server).
 */
export type ImagePuller = (docker: Docker, image: string, options: { policy?: ImagePullPolicy; onLine?: (line: string) => void; where?: string }) => Promise<EnsuredImage>;

/**
 * The Docker engine socket: DOCKER_HOST (unix://...) or /var/run/docker.sock. A DOCKER_HOST
 * of another scheme is refused with the reason, as the engine's runner refuses it.
 */
export function dockerSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const docker = parseDockerHost(env.DOCKER_HOST);
  if (docker.problem !== undefined) throw new TesseraError('TESSERA_DOCKER', `${docker.problem}: Tessera talks to the Docker engine over a unix socket`);
  return docker.socketPath;
}

/** The images of extensions, on one Docker engine: build, save, load, remove. */
export class ImageTool {
  readonly socketPath: string;
  readonly #docker: Docker;

  readonly #pull: ImagePuller | undefined;

  /** `pull`: how registry images are pulled (the server passes the engine's ensureImage); without it only images the engine holds are used. */
  constructor(socketPath = dockerSocketPath(), options: { pull?: ImagePuller } = {}) {
    this.socketPath = socketPath;
    this.#docker = new Docker({ socketPath });
    this.#pull = options.pull;
  }

  /**
   * Makes sure the engine holds a registry image, per its pull policy (IfNotPresent,
   * Always, Never); each line of the pull's progress goes to `onLine`. Throws a
   * TESSERA_DOCKER error saying why a pull was refused.
   */
  async ensure(image: string, policy: ImagePullPolicy | undefined, onLine: (line: string) => void = () => {}): Promise<EnsuredImage> {
    const where = `unix://${this.socketPath}`;
    if (this.#pull) return this.#pull(this.#docker, image, { policy, onLine, where });
    if (policy !== 'Always' && (await this.imageId(image))) return { pulled: false, wasAbsent: false };
    throw new TesseraError('TESSERA_DOCKER', `image ${image} is not on the Docker engine at ${where}, and this command does not pull: pull it there first (docker pull ${image}), then try again`);
  }

  /** The image's `/processing-container.json` (Kaapana's Task API), validated; throws naming the image and what is wrong. */
  processingContainer(image: string): Promise<ProcessingContainer> {
    return readProcessingContainerFromImage(image, this.#docker, `the Docker engine at unix://${this.socketPath}`);
  }

  /** Throws a TESSERA_DOCKER error saying how to get an engine, when none answers. */
  async ensureEngine(why: string): Promise<void> {
    if (!existsSync(this.socketPath)) {
      throw new TesseraError('TESSERA_DOCKER', `${why}, and no Docker engine is at ${this.socketPath}: start Docker, or set DOCKER_HOST=unix://<socket>`);
    }
    try {
      await this.#docker.ping();
    } catch (err) {
      throw new TesseraError('TESSERA_DOCKER', `${why}, and the Docker engine at ${this.socketPath} does not answer (${(err as Error).message})`, { cause: err });
    }
  }

  /** The image id (sha256:...) of a name, or undefined when the engine does not have it. */
  async imageId(name: string): Promise<string | undefined> {
    try {
      return (await this.#docker.getImage(name).inspect()).Id;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw dockerError(`could not inspect image ${name}`, err);
    }
  }

  /**
   * Builds `context` (with its Dockerfile) as `name`; FROM resolves against the engine's
   * local images (the classic builder), which is what an offline machine needs.
   * Each build step is reported; a failed step throws with the build's last lines.
   */
  async build(name: string, context: string, dockerfile: string | undefined, onLine: (line: string) => void = () => {}): Promise<string> {
    const ctx = resolve(context);
    const file = dockerfile ?? 'Dockerfile';
    if (!existsSync(resolve(ctx, file))) throw new TesseraError('TESSERA_INVALID_MANIFEST', `image ${name}: ${relative(process.cwd(), resolve(ctx, file)) || file} does not exist`);
    const { default: tarFs } = await import('tar-fs');
    const stream = await this.#docker.buildImage(tarFs.pack(ctx) as unknown as NodeJS.ReadableStream, { t: name, dockerfile: file, rm: true, forcerm: true });
    const tail: string[] = [];
    const result = await new Promise<{ error?: string }>((done) => {
      this.#docker.modem.followProgress(
        stream,
        (err: Error | null, output: { error?: string }[]) => done({ error: err?.message ?? output.find((o) => o.error)?.error }),
        (event: { stream?: string; status?: string; error?: string }) => {
          const text = (event.stream ?? event.status ?? '').trimEnd();
          for (const line of text.split('\n').filter(Boolean)) {
            tail.push(line);
            if (tail.length > 20) tail.shift();
            onLine(line);
          }
        },
      );
    });
    if (result.error) {
      throw new TesseraError('TESSERA_DOCKER', `building image ${name} from ${context} failed: ${result.error.trim()}\n${tail.slice(-10).join('\n')}`);
    }
    const id = await this.imageId(name);
    if (!id) throw new TesseraError('TESSERA_DOCKER', `building image ${name} ended, but the engine has no image of that name`);
    return id;
  }

  /** Writes `docker save` of one image to a file. */
  async save(name: string, file: string): Promise<void> {
    try {
      const stream = await this.#docker.getImage(name).get();
      await pipeline(stream, createWriteStream(file));
    } catch (err) {
      throw dockerError(`could not save image ${name}`, err);
    }
  }

  /** Loads a `docker save` tar into the engine. */
  async load(file: string): Promise<void> {
    try {
      const stream = await this.#docker.loadImage(createReadStream(file), { quiet: true });
      await new Promise<void>((done, fail) => {
        this.#docker.modem.followProgress(stream, (err: Error | null, output: { error?: string }[]) => {
          const error = err?.message ?? output.find((o) => o.error)?.error;
          if (error) fail(new Error(error));
          else done();
        });
      });
    } catch (err) {
      throw dockerError(`could not load the image archive ${file}`, err);
    }
  }

  /** Points `name` (repo:tag) at the image `id`. */
  async tag(id: string, name: string): Promise<void> {
    const colon = name.lastIndexOf(':');
    const hasTag = colon > name.lastIndexOf('/');
    await this.#docker.getImage(id).tag({ repo: hasTag ? name.slice(0, colon) : name, tag: hasTag ? name.slice(colon + 1) : 'latest' });
  }

  /** Removes an image by name; a missing image is fine, one a container still uses is left with a note. */
  async remove(name: string): Promise<string | undefined> {
    try {
      await this.#docker.getImage(name).remove({ noprune: false });
      return undefined;
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404) return undefined;
      return `image ${name} was not removed: ${(err as Error).message}`;
    }
  }
}

function dockerError(what: string, err: unknown): TesseraError {
  return new TesseraError('TESSERA_DOCKER', `${what}: ${(err as Error).message}`, { cause: err });
}
