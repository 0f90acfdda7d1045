import { createHash } from 'node:crypto';
import type { AppManager } from '@tessera/apps';
import type { BuiltinOperator } from '@tessera/engine';
import type { RunRights } from './data-operators.ts';

/**
 * launch-app: launches an application with the run's data (Kaapana's MITK-flow
 * pattern), then waits until a person marks the task complete
 * (POST /api/applications/<instance>/complete, `tessera app complete`); the DAG then
 * goes on with what the person saved in the task's output dir. The instance is named
 * after the run and the task, and stopped at the end. The instance acts with the rights of
 * the run's starter: its API token has their role in the project.
 */
export function launchAppOperator(apps: AppManager, publicUrl: () => string, rights: RunRights): BuiltinOperator {
  return async (ctx) => {
    const { extension, params } = ctx.params as { extension?: string; params?: Record<string, unknown> };
    if (!extension) throw new Error('launch-app needs builtin_params.extension: the application to launch');
    // The platform's record of the run's project, not conf/conf.json, which a task may have rewritten.
    const project = ctx.launch.conf.project_form.name;
    await rights.requireRunRole(ctx.launch, 'scientist', 'launch applications in it', project);
    // Named after the task, made unique by a hash of run and task (names are at most 40 characters).
    const hash = createHash('sha256').update(`${ctx.launch.runId}/${ctx.launch.taskId}`).digest('hex').slice(0, 10);
    const stem = ctx.launch.taskId.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 29) || 'task';
    const name = `${stem}-${hash}`;
    const env = ctx.launch.env(ctx.launch.workflowDir);
    const starter = ctx.launch.startedBy;
    const app = await apps.launch(extension, {
      project, name, params, task: { runId: ctx.launch.runId, taskId: ctx.launch.taskId, env },
      launchedBy: { userId: starter?.userId ?? null, role: starter?.role ?? null },
    });
    await ctx.log(`launch-app: ${extension} runs for this task at ${publicUrl()}${app.url}`);
    await ctx.log(`launch-app: waiting until it is marked complete: tessera app complete ${name} (or POST /api/applications/${name}/complete?project=${project})`);
    try {
      await apps.waitForCompletion(project, name, ctx.signal);
      await ctx.log('launch-app: marked complete; the workflow goes on');
    } finally {
      await apps.stop(project, name).catch(() => undefined);
    }
  };
}
