import { isIP } from 'node:net';
import { ErrorCodes, IsthmusError } from '../core/index.ts';

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Throws INVALID_ARGUMENT unless `id` is an RFC-1123 label (lower case, digits, '-', ≤ 63). */
export function validateClusterId(id: string, what = 'cluster id'): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > 63 || !LABEL.test(id)) {
    throw new IsthmusError(
      ErrorCodes.INVALID_ARGUMENT,
      `${what} ${JSON.stringify(id)} is not an RFC-1123 label: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
  return id;
}

/** Splits `--san` values into DNS names and IP addresses. */
export function splitSans(sans: readonly string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const raw of sans) {
    for (const s of raw.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
      if (isIP(s) !== 0) ipAddresses.push(s);
      else dnsNames.push(s);
    }
  }
  return { dnsNames, ipAddresses };
}
