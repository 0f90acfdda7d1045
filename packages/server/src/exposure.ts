import { isIP } from 'node:net';

/** Whether a bind address reaches only this machine: localhost, 127.0.0.0/8 or ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || h.startsWith('::ffff:127.');
  return false;
}

/**
 * What `npm start` says when HOST opens the server to a network. With sign-in on, what is
 * left open is the wire: without TLS, passwords, session cookies, API tokens and images
 * cross the network in clear text; and the DICOM port takes any sender until projects list
 * theirs. Undefined for a loopback address, or when there is nothing to say.
 */
export function exposureWarning(
  host: string,
  ports: { http: number; dicom: number | undefined },
  o: { tls: boolean; dicomRefusesUnknown: boolean } = { tls: false, dicomRefusesUnknown: false },
): string | undefined {
  if (isLoopbackHost(host)) return undefined;
  const where = host === '0.0.0.0' || host === '::' ? 'every network interface of this machine' : `the network address ${host}`;
  const dicom =
    ports.dicom === undefined || o.dicomRefusesUnknown
      ? ''
      : ` DICOM on port ${ports.dicom} takes C-STORE from any machine that reaches it, into every project whose senders are not restricted: ` +
        'list the allowed senders per project (`tessera projects senders <project> --allow <network>`) or refuse unknown ones everywhere (TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS=1).';
  if (o.tls) return dicom ? `tessera: WARNING: HOST=${host} serves HTTPS on port ${ports.http} on ${where}.${dicom}` : undefined;
  return (
    `tessera: WARNING: HOST=${host} serves plain HTTP on port ${ports.http} (the web UI, the API, DICOMweb, the application proxy) on ${where}: ` +
    'passwords, session cookies, API tokens and images cross the network unencrypted, readable and changeable by anyone on the way. ' +
    'Use TLS: set TESSERA_TLS_CERT and TESSERA_TLS_KEY (PEM files), or keep HOST=127.0.0.1 behind a reverse proxy that serves HTTPS (nginx; see "Serving other machines" in docs/guides/operations.md).' +
    dicom
  );
}
