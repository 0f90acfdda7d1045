import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TesseraError } from '@tessera/model';

/** The certificate and key the HTTPS server serves, read and checked at start. */
export interface TlsMaterial {
  /** PEM: the certificate, and the intermediate certificates after it when the file has them. */
  cert: Buffer;
  key: Buffer;
  /** For the start banner: whom the certificate names and until when it is valid. */
  subject: string;
  validTo: Date;
  /** What is not wrong enough to refuse the start (an expired certificate). */
  warnings: string[];
}

function fail(message: string, where: string, cause?: unknown): never {
  throw new TesseraError('TESSERA_CONFIG', `invalid configuration: ${message}`, { details: [{ where, message }], ...(cause === undefined ? {} : { cause }) });
}

/** A file's bytes, or a refusal that says which setting names it and what is wrong with it. */
function readSetting(name: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'there is no such file'
        : code === 'EACCES' || code === 'EPERM'
          ? `it cannot be read by this user (${code}): let the user that runs Tessera read it (chmod, chown)`
          : code === 'EISDIR'
            ? 'it is a folder, not a file'
            : `it cannot be read (${code ?? (err as Error).message})`;
    return fail(`${name}=${file}: ${why}`, name, err);
  }
}

/**
 * Reads TESSERA_TLS_CERT and TESSERA_TLS_KEY and checks them before anything starts:
 * each a readable PEM file, the certificate one that parses, the key an unencrypted
 * private key, and the key the certificate's. A problem stops the start with a message
 * that names the setting, the file and what to do; node:https would otherwise refuse
 * only at the first connection, or with OpenSSL's words.
 */
export function readTls(tls: { certFile: string; keyFile: string }): TlsMaterial {
  const cert = readSetting('TESSERA_TLS_CERT', tls.certFile);
  const key = readSetting('TESSERA_TLS_KEY', tls.keyFile);
  const certText = cert.toString('latin1');
  if (!certText.includes('-----BEGIN CERTIFICATE-----')) {
    const hint = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(certText)
      ? 'it holds a private key: TESSERA_TLS_CERT and TESSERA_TLS_KEY may be swapped'
      : 'a PEM certificate starts with "-----BEGIN CERTIFICATE-----" (convert a DER one with `openssl x509 -inform der -in cert.der -out cert.pem`)';
    fail(`TESSERA_TLS_CERT=${tls.certFile} is not a PEM certificate: ${hint}`, 'TESSERA_TLS_CERT');
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    return fail(`TESSERA_TLS_CERT=${tls.certFile}: its certificate cannot be read (${(err as Error).message}); check that the file is whole`, 'TESSERA_TLS_CERT', err);
  }
  const keyText = key.toString('latin1');
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyText)) {
    const hint = keyText.includes('-----BEGIN CERTIFICATE-----')
      ? 'it holds a certificate: TESSERA_TLS_CERT and TESSERA_TLS_KEY may be swapped'
      : 'a PEM private key starts with "-----BEGIN PRIVATE KEY-----" (or RSA PRIVATE KEY, EC PRIVATE KEY)';
    fail(`TESSERA_TLS_KEY=${tls.keyFile} is not a PEM private key: ${hint}`, 'TESSERA_TLS_KEY');
  }
  if (keyText.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type: 4,ENCRYPTED/.test(keyText)) {
    fail(
      `TESSERA_TLS_KEY=${tls.keyFile} is encrypted with a passphrase, which Tessera cannot ask for at start: decrypt it into a file only its user may read (\`openssl pkey -in key.pem -out key-plain.pem\`, chmod 600)`,
      'TESSERA_TLS_KEY',
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    return fail(`TESSERA_TLS_KEY=${tls.keyFile}: its private key cannot be read (${(err as Error).message}); check that the file is whole`, 'TESSERA_TLS_KEY', err);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    fail(
      `TESSERA_TLS_KEY=${tls.keyFile} is not the key of the certificate in TESSERA_TLS_CERT=${tls.certFile} (${x509.subject.replace(/\n/g, ', ')}): ` +
        'give the key the certificate was made for (compare `openssl x509 -noout -pubkey -in <cert>` with `openssl pkey -pubout -in <key>`)',
      'TESSERA_TLS_KEY',
    );
  }
  const validTo = new Date(x509.validTo);
  const warnings: string[] = [];
  if (validTo.getTime() < Date.now()) warnings.push(`the certificate in TESSERA_TLS_CERT expired on ${validTo.toISOString()}: browsers and clients will refuse it; renew it and restart`);
  else if (new Date(x509.validFrom).getTime() > Date.now()) warnings.push(`the certificate in TESSERA_TLS_CERT is valid only from ${new Date(x509.validFrom).toISOString()}: clients will refuse it until then`);
  return { cert, key, subject: x509.subject.replace(/\n/g, ', '), validTo, warnings };
}
