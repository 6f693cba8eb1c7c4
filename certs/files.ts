import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ErrorCodes, IsthmusError, messageOf } from '../core/index.ts';

/**
 * Writes `content` to `path` atomically (temp file + rename), so a reader never sees a
 * half-written certificate. Secrets get mode 0600 from creation on; other files 0644.
 */
export async function writeFileAtomic(path: string, content: string, secret: boolean): Promise<void> {
  const mode = secret ? 0o600 : 0o644;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(tmp, content, { mode, flag: 'wx' });
  await chmod(tmp, mode); // the umask may have removed bits; never add any to a secret
  await rename(tmp, path);
}

/** Reads a PEM file, or throws NOT_FOUND saying which file is missing and what makes it. */
export async function readPemFile(path: string, what: string, hint: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new IsthmusError(ErrorCodes.NOT_FOUND, `${what} ${path} does not exist: ${hint}`, { cause: err });
    throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `cannot read ${what} ${path}: ${messageOf(err)}`, { cause: err });
  }
}

/** Splits a PEM bundle into its certificates. */
export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)?.map((p) => `${p}\n`) ?? [];
}
