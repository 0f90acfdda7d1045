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
 * What `npm start` says when HOST opens the server to a network: this Tessera has no
 * sign-in yet, so whoever reaches the port can read every image and run code.
 * Undefined for a loopback address.
 */
export function exposureWarning(host: string, ports: { http: number; dicom: number | undefined }): string | undefined {
  if (isLoopbackHost(host)) return undefined;
  const where = host === '0.0.0.0' || host === '::' ? 'every network interface of this machine' : `the network address ${host}`;
  return (
    `tessera: WARNING: HOST=${host} serves HTTP on port ${ports.http} (the web UI, the API, DICOMweb, the application proxy)` +
    `${ports.dicom === undefined ? '' : ` and DICOM on port ${ports.dicom}`} on ${where}. ` +
    'This Tessera has no sign-in yet: anyone who can reach these ports can read every image, delete data and run code (workflows, Jupyter). ' +
    'Use HOST=127.0.0.1 (the default) unless every machine that can reach this one is trusted.'
  );
}
