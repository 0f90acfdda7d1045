import { rm } from 'node:fs/promises';
import type { WorkflowStore } from '../store/workflow-store.ts';

export interface RetentionPolicy {
  /** Days a successful or canceled run's workflow dir is kept. */
  days: number;
  /** Days a failed run's workflow dir is kept (longer, for debugging). */
  failedDays: number;
}

const DAY = 24 * 60 * 60 * 1000;

/** Removes the workflow dirs of ended runs older than the policy. Logs are kept. Returns the runs cleaned. */
export async function removeExpiredWorkflowDirs(
  store: WorkflowStore,
  policy: RetentionPolicy,
  now = Date.now(),
  onError?: (runId: string, err: Error) => void,
): Promise<string[]> {
  const rows = await store.expiredWorkflowDirs({ success: now - policy.days * DAY, failed: now - policy.failedDays * DAY });
  const removed: string[] = [];
  for (const row of rows) {
    try {
      await rm(row.workflow_dir, { recursive: true, force: true });
    } catch (err) {
      // One dir that cannot go (e.g. files a container wrote as another user) must not stop the others.
      onError?.(row.id, err as Error);
      continue;
    }
    await store.write({ runs: [{ runId: row.id, patch: { dir_removed_at: now } }] });
    removed.push(row.id);
  }
  return removed;
}
