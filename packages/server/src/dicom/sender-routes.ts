import type { FastifyInstance } from 'fastify';
import { dicomSenderRoutes as routes, type DicomSenders } from '@tessera/api';
import type { DicomService, SenderPolicy } from '@tessera/dicom';
import { iso } from '../http/lists.ts';
import { serve } from '../http/serve-route.ts';
import { DEFAULT_PROJECT, type Project, type ProjectStore } from '../projects/project-store.ts';

export interface SenderRoutesOptions {
  dicom: DicomService;
  projects: ProjectStore;
  /** Our AE title (TESSERA_DICOM_AE): a called AE title other than `kp-<project>` reaches the default project. */
  aeTitle: string;
  log: { info(message: string): void };
}

function sendersJson(dicom: DicomService, p: Project, policy: SenderPolicy, aeTitle: string): DicomSenders {
  return {
    project: p.name,
    refuse_unknown: policy.refuseUnknown,
    refuse_unknown_everywhere: dicom.senders.refuseUnknownEverywhere,
    enforced: dicom.senders.enforced(p.id),
    allowed: policy.allowed.map((a) => ({ address: a.address, note: a.note })),
    called_ae_titles: p.name === DEFAULT_PROJECT ? [`kp-${p.name}`, aeTitle] : [`kp-${p.name}`],
    updated_at: iso(policy.updatedAt),
  };
}

/** A project's allowed C-STORE senders: read and replace. */
export async function senderRoutes(app: FastifyInstance, opts: SenderRoutesOptions): Promise<void> {
  const { dicom, projects, aeTitle } = opts;

  serve(app, routes.get, async (req) => {
    const p = await projects.require(req.params.name);
    return sendersJson(dicom, p, dicom.senders.get(p.id), aeTitle);
  });

  serve(app, routes.set, async (req) => {
    const p = await projects.require(req.params.name);
    const b = req.body;
    const policy = await dicom.senders.set(p.id, { refuseUnknown: b.refuse_unknown, allowed: b.allowed });
    const answer = sendersJson(dicom, p, policy, aeTitle);
    // Who may send data is a security setting: its changes belong in the log.
    const listed = policy.allowed.slice(0, 10).map((a) => a.address).join(', ') + (policy.allowed.length > 10 ? ` and ${policy.allowed.length - 10} more` : '');
    opts.log.info(
      `DICOM senders of project "${p.name}" set: ${answer.enforced ? `only ${listed || 'no address'}` : 'anyone (no list, unknown senders accepted)'}` +
        `${policy.refuseUnknown ? ', unknown senders refused' : ''}`,
    );
    return answer;
  });
}
