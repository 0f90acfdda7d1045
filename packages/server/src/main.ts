import { TesseraError } from '@tessera/model';
import { createTessera } from './create-tessera.ts';
import { loadConfig } from './config.ts';
import { exposureWarning } from './exposure.ts';

/** `npm start`: one process serving the UI, API and DICOM; state under TESSERA_HOME. */
export async function main(): Promise<void> {
  let tessera;
  try {
    tessera = await createTessera(loadConfig());
  } catch (err) {
    console.error(`tessera: could not start: ${err instanceof TesseraError || err instanceof Error ? err.message : String(err)}`);
    if (err instanceof Error && err.cause) console.error(`  cause: ${(err.cause as Error).message ?? String(err.cause)}`);
    process.exit(1);
  }
  let url: string;
  try {
    url = await tessera.listen();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === 'EADDRINUSE' ? ` (port ${tessera.config.port} is taken: stop the other server or set PORT)` : '';
    const message = (err as Error).message;
    // The DICOM receiver's own failure already says where and what to do.
    console.error(message.startsWith('could not receive DICOM') ? `tessera: ${message}` : `tessera: could not listen on ${tessera.config.host}:${tessera.config.port}: ${message}${hint}`);
    await tessera.close();
    process.exit(1);
  }
  const c = tessera.config;
  const lines = [
    `Tessera ${'0.1.0'} ready at ${url}`,
    `  home:      ${c.home}`,
    ...(tessera.tls ? [`  tls:       certificate ${tessera.tls.subject}, valid until ${tessera.tls.validTo.toISOString().slice(0, 10)} (TESSERA_TLS_CERT)`] : []),
    ...(tessera.tls?.warnings ?? []).map((w) => `  warning:   ${w}`),
    `  runners:   ${tessera.runners.map((r) => `${r.name} (${r.detail})`).join(', ')}`,
    // The warnings (no sandbox) are printed on their own, below.
    ...tessera.runnerNotes.filter((n) => !tessera.warnings.includes(n)).map((n) => `  note:      ${n}`),
    `  dicom:     ${tessera.dicomPort === undefined ? 'receiver off (DICOM_PORT=off)' : `C-STORE/C-ECHO on ${c.host}:${tessera.dicomPort}, AE title ${c.dicomAeTitle}; DICOMweb at ${url}/dicom-web`}`,
    `  workflows: ${tessera.registry.list().map((w) => w.spec.id).join(', ') || 'none'}`,
    ...tessera.registry.problems().map((p) => `  problem:   ${p.dir}: ${p.message}`),
    `  try:       npx tessera run hello-world`,
  ];
  if (c.auth === 'off') {
    lines.push('  access:    OFF (TESSERA_AUTH=off): anyone who reaches this port acts as admin; only for one user on this machine');
  } else {
    lines.push(`  access:    sign-in required; users and roles: ${url}/admin`);
    const oidc = tessera.access.oidc;
    if (oidc && c.oidc) lines.push(`  oidc:      "${oidc.name}" at ${c.oidc.issuer} (client ${c.oidc.clientId}); the redirect URI to register there is ${oidc.redirectUri}`);
    if (tessera.appsUrl) lines.push(`  apps:      application instances, each on a host of its own: ${tessera.appsUrl} (TESSERA_APPS_PORT, TESSERA_APPS_PUBLIC_URL)`);
    if (tessera.runtimeFile) lines.push(`  cli:       this machine's CLI finds the server and an admin token in ${tessera.runtimeFile}`);
    const link = await tessera.consoleSignInLink();
    if (link) {
      // The password itself is never printed or logged: it is in a file only this user can read.
      lines.push(
        `  first sign-in: open ${link}`,
        `                 (works once, for 15 minutes), or sign in as "admin" with the password in ${tessera.access.identity.initialPasswordFile}; you choose your own password then`,
      );
    }
  }
  console.log(lines.join('\n'));
  for (const w of tessera.warnings) console.error(`tessera: warning: ${w}`);
  const exposed = exposureWarning(
    c.host,
    { http: tessera.config.port === 0 ? Number(new URL(url).port) : tessera.config.port, dicom: tessera.dicomPort },
    { tls: tessera.tls !== undefined, dicomRefusesUnknown: c.dicomRefuseUnknownSenders },
  );
  if (exposed) console.error(exposed);
  tessera.scheduler.on('fatal', () => {
    // Memory and DB may disagree now; a new start recovers from the DB.
    console.error('tessera: the scheduler hit an unrecoverable error (see above); exiting so that a restart recovers from the database');
    process.exit(1);
  });
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log(`tessera: ${signal} received, stopping (running containers keep running and are re-attached at the next start)`);
    await tessera.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
