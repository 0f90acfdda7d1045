import { readFile } from 'node:fs/promises';
import Docker from 'dockerode';
import { parseDockerHost, parseProcessingContainer, TesseraError, type ProcessingContainer } from '@tessera/model';

/** Where Kaapana's Task API expects the file in a processing container's image. */
export const PROCESSING_CONTAINER_PATH = '/processing-container.json';

/** A Docker client for DOCKER_HOST (unix:// only) or the default socket; throws TESSERA_DOCKER saying what is wrong. */
export function localDocker(env: NodeJS.ProcessEnv = process.env): { docker: Docker; where: string } {
  const host = parseDockerHost(env.DOCKER_HOST);
  if (host.problem) throw new TesseraError('TESSERA_DOCKER', host.problem);
  return { docker: new Docker({ socketPath: host.socketPath }), where: `unix://${host.socketPath}` };
}

interface DockerError extends Error {
  statusCode?: number;
  json?: { message?: string } | null;
}

/** The first file of a tar stream, as text. */
async function firstTarFile(stream: NodeJS.ReadableStream): Promise<string> {
  const { extract } = await import('tar-stream');
  const ex = extract();
  let text: string | undefined;
  for await (const entry of (stream as NodeJS.ReadableStream).pipe(ex)) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    if (text === undefined && entry.header.type === 'file') text = Buffer.concat(chunks).toString('utf8');
  }
  if (text === undefined) throw new Error('the archive holds no file');
  return text;
}

/**
 * Reads `/processing-container.json` from a local image, as Kaapana does: a container is
 * created (never started), the file copied out of it, and the container removed. The image
 * must be on the engine (nothing is pulled). Throws naming the image and what is wrong.
 */
export async function readProcessingContainerFromImage(image: string, docker?: Docker, where = 'the Docker engine'): Promise<ProcessingContainer> {
  const d = docker ?? localDocker().docker;
  let container: Docker.Container;
  try {
    container = await d.createContainer({ Image: image, Cmd: ['true'], Labels: { 'tessera.scratch': 'processing-container' } });
  } catch (err) {
    const e = err as DockerError;
    if (e.statusCode === 404) throw new TesseraError('TESSERA_NOT_FOUND', `image "${image}" is not on ${where}; build or pull it first`);
    throw new TesseraError('TESSERA_DOCKER', `could not open image "${image}" on ${where}: ${(e.json?.message ?? e.message).trim()}`);
  }
  try {
    let archive: NodeJS.ReadableStream;
    try {
      archive = await container.getArchive({ path: PROCESSING_CONTAINER_PATH });
    } catch (err) {
      if ((err as DockerError).statusCode === 404) {
        throw new TesseraError('TESSERA_NOT_FOUND', `image "${image}" has no ${PROCESSING_CONTAINER_PATH}: a Task API processing container must have it at the image root (COPY processing-container.json /)`);
      }
      throw err;
    }
    return parseProcessingContainer(await firstTarFile(archive), `${PROCESSING_CONTAINER_PATH} of image "${image}"`, process.env);
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/** Reads a processing-container.json file (e.g. beside an image's build context). */
export async function readProcessingContainerFile(path: string): Promise<ProcessingContainer> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new TesseraError('TESSERA_NOT_FOUND', `${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseProcessingContainer(text, path, process.env);
}
