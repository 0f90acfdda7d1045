import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DagScheduler, RunRow, TaskRow } from '@tessera/engine';
import { TesseraError, isTerminalTaskState } from '@tessera/model';

export interface FollowTaskLogOptions {
  scheduler: DagScheduler;
  run: RunRow;
  taskId: string;
  /** A given try; default the latest, switching to newer tries while following. */
  attempt?: number;
  tryNumber?: number;
  follow: boolean;
  signal: AbortSignal;
  /** How often a followed log is checked for new output. */
  intervalMs?: number;
}

/**
 * A task's log as a stream. Without `follow` it is what was written so far; with
 * `follow` it goes on until the task ends (including its retries), reading the
 * file after each state check so that nothing written before the end is lost.
 */
export async function followTaskLog(o: FollowTaskLogOptions): Promise<Readable> {
  const getTask = async (): Promise<TaskRow> => {
    const t = (await o.scheduler.store.getTasks(o.run.id)).find((x) => x.task_id === o.taskId);
    if (!t) throw new TesseraError('TESSERA_NOT_FOUND', `task "${o.taskId}" does not exist in run "${o.run.id}"`);
    return t;
  };
  const first = await getTask();
  const pinned = o.attempt !== undefined || o.tryNumber !== undefined;
  if (pinned) {
    const attempt = o.attempt ?? first.attempt;
    const tryNumber = o.tryNumber ?? first.try_number;
    if (attempt > first.attempt || (attempt === first.attempt && tryNumber > first.try_number) || tryNumber < 1) {
      throw new TesseraError('TESSERA_NOT_FOUND', `task "${o.taskId}" has no try ${tryNumber} in attempt ${attempt}; its latest is try ${first.try_number} of attempt ${first.attempt}`);
    }
  }
  const interval = o.intervalMs ?? 150;

  async function* lines(): AsyncGenerator<Buffer | string> {
    let attempt = o.attempt ?? first.attempt;
    let tryNumber = o.tryNumber ?? first.try_number;
    let pos = 0;
    while (!o.signal.aborted) {
      const task = await getTask();
      const ended = isTerminalTaskState(task.state) || (pinned && (task.attempt !== attempt || task.try_number !== tryNumber || task.state !== 'running'));
      if (tryNumber > 0) {
        // Everything written so far, in pieces, so that a huge log never sits in memory whole.
        const file = o.scheduler.logFile(o.run.id, o.taskId, attempt, tryNumber);
        for (;;) {
          const chunk = await readFrom(file, pos, CHUNK);
          if (chunk.length === 0) break;
          pos += chunk.length;
          yield chunk;
          if (chunk.length < CHUNK) break;
        }
      }
      if (!o.follow) return;
      if (!pinned && task.try_number > 0 && (task.attempt !== attempt || task.try_number !== tryNumber)) {
        // A newer try started (it may even have ended already): what the old file held has been read above.
        attempt = task.attempt;
        tryNumber = task.try_number;
        pos = 0;
        yield `\n--- tessera: ${o.taskId} try ${tryNumber} (attempt ${attempt}) ---\n`;
        continue;
      }
      if (ended) return;
      await sleep(interval, undefined, { signal: o.signal }).catch(() => undefined);
    }
  }
  return Readable.from(lines());
}

const CHUNK = 1024 * 1024;

async function readFrom(file: string, pos: number, max: number): Promise<Buffer> {
  const fh = await open(file, 'r').catch(() => undefined);
  if (!fh) return Buffer.alloc(0);
  try {
    const { size } = await fh.stat();
    if (size <= pos) return Buffer.alloc(0);
    const buf = Buffer.alloc(Math.min(max, size - pos));
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
