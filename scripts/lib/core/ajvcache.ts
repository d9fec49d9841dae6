// JSON Schema validators compiled once per schema text. Ajv needs tens to hundreds of milliseconds to
// compile a schema (and to load itself); the code it generates is stored under cacheRoot()/ajv/,
// keyed by the Ajv version, the options and the schema text, and later runs only evaluate it, without
// loading the compiler. Ajv is required lazily, on a cache miss only.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Ajv, ValidateFunction } from 'ajv';
import { cacheRoot } from './paths.ts';

const requireHere = createRequire(import.meta.url);
/** Bump when the way the code is generated changes. */
const CODE_VERSION = 2;
const memo = new Map<string, ValidateFunction>();

export interface ValidatorOptions {
  /** Add ajv-formats (uri, date-time, ...). */
  formats?: boolean;
}

/**
 * A validator for the schema in `schemaText` (allErrors, verbose, not strict). Throws a SyntaxError
 * when the text is not JSON. The cache is an optimisation only: a damaged or unwritable entry means
 * compiling again.
 */
export function cachedValidator(schemaText: string, options: ValidatorOptions = {}): ValidateFunction {
  const ajvVersion = (requireHere('ajv/package.json') as { version: string }).version;
  const key = createHash('sha256')
    .update(`${ajvVersion}\u0000${CODE_VERSION}\u0000${options.formats ? 'formats' : ''}\u0000${schemaText}`)
    .digest('hex')
    .slice(0, 32);
  const known = memo.get(key);
  if (known) return known;
  const codeFile = path.join(cacheRoot(), 'ajv', `${key}.cjs`);
  let validate: ValidateFunction | undefined;
  if (fs.existsSync(codeFile)) {
    try {
      validate = loadValidatorCode(fs.readFileSync(codeFile, 'utf8'));
    } catch {
      validate = undefined; // rebuilt below
    }
  }
  if (!validate) {
    const schema = JSON.parse(schemaText) as object;
    const { Ajv: AjvClass } = requireHere('ajv') as { Ajv: new (o: object) => Ajv };
    const ajv = new AjvClass({ allErrors: true, strict: false, verbose: true, code: { source: true } });
    if (options.formats) (requireHere('ajv-formats') as { default: (a: Ajv) => void }).default(ajv);
    validate = ajv.compile(schema);
    try {
      const standalone = (requireHere('ajv/dist/standalone/index.js') as { default: (a: Ajv, f: ValidateFunction) => string }).default;
      const code = standalone(ajv, validate);
      fs.mkdirSync(path.dirname(codeFile), { recursive: true });
      const tmp = `${codeFile}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, code);
      fs.renameSync(tmp, codeFile);
    } catch {
      /* caching is an optimisation only */
    }
  }
  memo.set(key, validate);
  return validate;
}

function loadValidatorCode(code: string): ValidateFunction {
  const mod = { exports: {} as Record<string, unknown> };
  // The generated code requires Ajv's runtime helpers (and ajv-formats): resolved from here.
  new Function('require', 'module', 'exports', code)(requireHere, mod, mod.exports);
  const fn = (mod.exports.default ?? mod.exports) as ValidateFunction;
  if (typeof fn !== 'function') throw new Error('no validator in cached code');
  return fn;
}
