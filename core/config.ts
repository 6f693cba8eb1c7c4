import { ErrorCodes, IsthmusError } from './errors.ts';

/**
 * Config is validated once, at start, then frozen. A schema is a map of fields;
 * each field parses its raw value (or applies its documented default) and
 * reports what is wrong in words a user can act on. All problems are reported
 * together, not one per run.
 */
export interface Field<T> {
  /** What the option does and its default, for --help and docs. */
  readonly doc: string;
  parse(raw: unknown): T;
}

export type Schema = Record<string, Field<unknown>>;
export type ConfigOf<S extends Schema> = { readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never };

class FieldError extends Error {}

function fail(message: string): never {
  throw new FieldError(message);
}

export function str(doc: string, def?: string, pattern?: RegExp, hint?: string): Field<string> {
  return {
    doc,
    parse(raw) {
      if (raw === undefined || raw === '') {
        if (def !== undefined) return def;
        fail('is required');
      }
      if (typeof raw !== 'string') fail(`must be a string, got ${typeof raw}`);
      if (pattern !== undefined && !pattern.test(raw)) fail(`"${raw}" ${hint ?? `does not match ${pattern}`}`);
      return raw;
    },
  };
}

export function optionalStr(doc: string): Field<string | undefined> {
  return {
    doc,
    parse(raw) {
      if (raw === undefined || raw === '') return undefined;
      if (typeof raw !== 'string') fail(`must be a string, got ${typeof raw}`);
      return raw;
    },
  };
}

export function int(doc: string, def: number | undefined, min: number, max: number): Field<number> {
  return {
    doc,
    parse(raw) {
      if (raw === undefined || raw === '') {
        if (def !== undefined) return def;
        fail('is required');
      }
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isInteger(n)) fail(`must be a whole number, got ${JSON.stringify(raw)}`);
      if (n < min || n > max) fail(`must be between ${min} and ${max}, got ${n}`);
      return n;
    },
  };
}

export function bool(doc: string, def: boolean): Field<boolean> {
  return {
    doc,
    parse(raw) {
      if (raw === undefined || raw === '') return def;
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      return fail(`must be true or false, got ${JSON.stringify(raw)}`);
    },
  };
}

export function oneOf<T extends string>(doc: string, values: readonly T[], def?: T): Field<T> {
  return {
    doc,
    parse(raw) {
      if (raw === undefined || raw === '') {
        if (def !== undefined) return def;
        fail(`is required (one of ${values.join(', ')})`);
      }
      if (typeof raw !== 'string' || !(values as readonly string[]).includes(raw)) {
        fail(`must be one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      return raw as T;
    },
  };
}

/** A list given as an array or as a comma-separated string; each item parsed by `item`. */
export function list<T>(doc: string, item: Field<T>, def: readonly T[] = []): Field<readonly T[]> {
  return {
    doc,
    parse(raw) {
      if (raw === undefined || raw === '') return def;
      const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',').map((s) => s.trim()) : fail('must be a list');
      return items.map((v: unknown, i: number) => {
        try {
          return item.parse(v);
        } catch (err) {
          if (err instanceof FieldError) fail(`item ${i + 1}: ${err.message}`);
          throw err;
        }
      });
    },
  };
}

/** A field with a custom parser that throws an Error whose message says what is wrong. */
export function custom<T>(doc: string, parse: (raw: unknown) => T): Field<T> {
  return {
    doc,
    parse(raw) {
      try {
        return parse(raw);
      } catch (err) {
        if (err instanceof FieldError) throw err;
        return fail(err instanceof Error ? err.message : String(err));
      }
    },
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Validates `input` against `schema` and returns a deeply frozen config.
 * Unknown keys are refused (a typo must not silently fall back to a default).
 * Throws IsthmusError INVALID_CONFIG listing every problem.
 */
export function validateConfig<S extends Schema>(schema: S, input: Record<string, unknown>, what = 'config'): ConfigOf<S> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(input)) {
    if (!(key in schema) && input[key] !== undefined) problems.push(`${key}: unknown option (known: ${Object.keys(schema).join(', ')})`);
  }
  for (const [key, field] of Object.entries(schema)) {
    try {
      out[key] = field.parse(input[key]);
    } catch (err) {
      if (!(err instanceof FieldError)) throw err;
      problems.push(`${key}: ${err.message}`);
    }
  }
  if (problems.length > 0) {
    throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `invalid ${what}:\n  ${problems.join('\n  ')}`, {
      context: { problems },
    });
  }
  return deepFreeze(out) as ConfigOf<S>;
}
