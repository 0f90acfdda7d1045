import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Real DICOM files shipped by Debian's python3-pydicom (CT, MR, RT, SR, every common transfer syntax). */
export const PYDICOM_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
/** Character-set test files shipped by python3-pydicom. */
export const PYDICOM_CHARSET_FILES = '/usr/lib/python3/dist-packages/pydicom/data/charset_files';

const SETUP = 'apt-get install -y --no-install-recommends dcmtk python3-pydicom (as .ci/run does)';

function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const missing: string[] = [];
for (const tool of ['storescu', 'echoscu', 'dcmdump', 'dcmcjpeg', 'dcmcjpls', 'dcmcrle', 'dcmconv']) {
  if (!hasTool(tool)) missing.push(`dcmtk's ${tool}`);
}
if (!existsSync(join(PYDICOM_FILES, 'CT_small.dcm'))) missing.push(`pydicom's test files in ${PYDICOM_FILES}`);

/** Why the DICOM interop tests cannot run here, or undefined. */
export const dicomToolsProblem = missing.length ? `missing ${missing.join(', ')}; install with: ${SETUP}` : undefined;

/** Skip only outside CI: in CI (CI=true) a missing tool must fail the tests, never skip them. */
export const skipDicomTools = dicomToolsProblem !== undefined && process.env.CI !== 'true';
if (skipDicomTools) console.warn(`DICOM interop tests skipped: ${dicomToolsProblem}`);

/** Path of a pydicom test file. */
export function pydicomFile(name: string): string {
  return join(PYDICOM_FILES, name);
}

/** Environment for dcmtk tools: without TCP_NODELAY loopback C-STORE crawls (Nagle). */
export const DCMTK_ENV = { ...process.env, TCP_NODELAY: '1' };

/** dicom3tools' IOD validator, for tests of DICOM objects we write (e.g. a SEG). */
export const DCIODVFY = '/usr/bin/dciodvfy';
export const dicom3toolsProblem = existsSync(DCIODVFY) ? undefined : `there is no ${DCIODVFY}; install with: apt-get install -y --no-install-recommends dicom3tools (as .ci/run does)`;
/** Skip only outside CI: in CI (CI=true) a missing validator must fail the test, never skip it. */
export const skipDicom3tools = dicom3toolsProblem !== undefined && process.env.CI !== 'true';
if (skipDicom3tools) console.warn(`DICOM validator tests skipped: ${dicom3toolsProblem}`);
