import type { DicomSenders, SetDicomSenders } from '@tessera/api';
import { CliError, type ApiClient } from '../api-client.ts';
import { printJson, table } from '../output.ts';

export interface SendersOptions {
  /** Addresses or networks to add to the list. */
  allow?: string[];
  /** The note of the addresses added with --allow. */
  note?: string;
  /** Addresses or networks to take off the list. */
  remove?: string[];
  /** Empty the list before adding (--allow). */
  clear?: boolean;
  /** --refuse-unknown (true) or --accept-unknown (false). */
  refuseUnknown?: boolean;
  json?: boolean;
}

/** Compares entries the way a person typed them with the server's canonical form, for the common cases (case, /32, /128). */
function sameEntry(typed: string, listed: string): boolean {
  const norm = (t: string): string => {
    const x = t.trim().toLowerCase();
    return x.replace(x.includes(':') ? /\/128$/ : /\/32$/, '');
  };
  return norm(typed) === norm(listed);
}

/**
 * `tessera projects senders <project>`: shows who may send DICOM to the project; with
 * --allow, --remove, --clear, --refuse-unknown or --accept-unknown, changes it (the
 * server checks every address, and a bad one changes nothing).
 */
export async function sendersCommand(api: ApiClient, project: string, o: SendersOptions): Promise<number> {
  const path = `/api/projects/${encodeURIComponent(project)}/dicom-senders`;
  if (o.note !== undefined && !o.allow?.length) throw new CliError('--note is the note of the addresses given with --allow: add --allow <address>', { exitCode: 2 });
  const current = await api.get<DicomSenders>(path);
  const changing = (o.allow?.length ?? 0) > 0 || (o.remove?.length ?? 0) > 0 || o.clear === true || o.refuseUnknown !== undefined;
  let shown = current;
  if (changing) {
    let allowed = o.clear ? [] : current.allowed.map((a) => ({ address: a.address, note: a.note }));
    for (const r of o.remove ?? []) {
      const i = allowed.findIndex((a) => sameEntry(r, a.address));
      if (i < 0) {
        throw new CliError(
          `${r} is not on the list of project ${project}${allowed.length ? ` (it has ${allowed.map((a) => a.address).join(', ')})` : ', which is empty'}; nothing was changed`,
          { exitCode: 1 },
        );
      }
      allowed.splice(i, 1);
    }
    for (const a of o.allow ?? []) {
      const listed = allowed.find((x) => sameEntry(a, x.address));
      // Allowing what is listed already changes only its note.
      if (listed) listed.note = o.note ?? listed.note;
      else allowed.push({ address: a, note: o.note ?? null });
    }
    allowed = allowed.map((a) => ({ address: a.address, note: a.note }));
    const body: SetDicomSenders = { refuse_unknown: o.refuseUnknown ?? current.refuse_unknown, allowed };
    shown = await api.put<DicomSenders>(path, body);
  }
  if (o.json) {
    printJson(shown);
    return 0;
  }
  console.log(`project          ${shown.project}`);
  console.log(`called AE title  ${shown.called_ae_titles.join(', ')}`);
  console.log(`senders          ${describe(shown)}`);
  if (shown.allowed.length) console.log(`\n${table(['ADDRESS', 'NOTE'], shown.allowed.map((a) => [a.address, a.note]))}`);
  return 0;
}

function describe(s: DicomSenders): string {
  if (!s.enforced) return 'anyone who reaches the DICOM port (no list; restrict it with --allow <address or network>, or --refuse-unknown)';
  const why = s.allowed.length ? 'only the addresses below' : s.refuse_unknown_everywhere && !s.refuse_unknown ? 'none: TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS=1 and no address is allowed' : 'none: unknown senders are refused and no address is allowed';
  return `${why}; others are refused (A-ASSOCIATE-RJ)`;
}
