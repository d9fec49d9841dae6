// `compose.ts init`: the env file of the Compose stack, made from .env.example with every secret
// generated here. The secrets consist of letters and digits only: ConduitLLM copies the PostgreSQL
// and Redis passwords into DATABASE_URL and REDIS_URL and parses those without decoding them
// (upstream ConduitLLM.Core/Data/ConnectionStringManager.cs:156 takes the password group of a
// regex as it is; ConduitLLM.Configuration/Utilities/RedisUrlParser.cs:63 and :108 paste it into a
// comma-separated connection string). The same alphabet is used for every secret, so one rule fits all.
// A secret is never printed: not in the plan, the summary, --json or any argument of a child process
// (this verb starts none).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  activeServices,
  checkEnv,
  checkImages,
  isPlaceholderValue,
  isSecretName,
  PLACEHOLDER,
  loadComposeFile,
  parseEnvText,
  resolveDocument,
  variablesUsed,
  type ComposeDocument,
  type Env,
  type EnvEntry,
  type EnvProblem,
} from '../domain/compose-model.ts';
import { UserError } from '../core/errors.ts';
import { displayPath } from '../core/paths.ts';
import { registerSecret } from '../core/redact.ts';

export const SECRET_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export const SECRET_LENGTH = 40;
/** Shortest secret this verb writes (`compose.ts up` itself refuses fewer than 16 characters). */
export const MIN_SECRET_LENGTH = 32;

export type RandomBytes = (n: number) => Uint8Array;

/**
 * A secret of `length` characters drawn uniformly from letters and digits with a cryptographic
 * random source. Bytes of 248 and more are dropped (248 = 4 x 62), so no character is likelier than
 * another. A value the stack's own checks would take for a placeholder (it contains e.g. "todo"
 * or "example", about once in 25,000 draws) is drawn again.
 */
export function generateSecret(length = SECRET_LENGTH, randomBytes: RandomBytes = crypto.randomBytes): string {
  if (!Number.isInteger(length) || length < MIN_SECRET_LENGTH) throw new Error(`secret length must be an integer >= ${MIN_SECRET_LENGTH} (got ${length})`);
  const n = SECRET_ALPHABET.length;
  const limit = 256 - (256 % n);
  for (let attempt = 0; attempt < 100; attempt++) {
    let out = '';
    while (out.length < length) {
      for (const b of randomBytes(length - out.length)) if (b < limit) out += SECRET_ALPHABET[b % n];
    }
    if (!isPlaceholderValue(out)) return out;
  }
  throw new Error('the random source keeps producing values that look like placeholders');
}

// ---- which variables ---------------------------------------------------------------------------

/** A placeholder of our own (`CHANGE_ME...`) stands for a value this verb may invent. */
const OWN_PLACEHOLDER = /^change[_-]?me/i;

export interface ToFill {
  variable: string;
  /** The profiles whose services use it ('default' = the services that always run). */
  profiles: string[];
}

export interface TemplateClasses {
  /** Secrets to generate: credential names whose example value is our placeholder or a fixed value `up` refuses. */
  generated: string[];
  /** Placeholders only a human can replace: keys issued by a third party (Clerk) and addresses (external URLs). */
  toFill: ToFill[];
}

/** Which profiles use each variable: 'default' for services without profiles, else their profiles. */
export function variableProfiles(doc: ComposeDocument): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, svc] of Object.entries(doc.services)) {
    const profiles = svc.profiles?.length ? svc.profiles : ['default'];
    for (const v of variablesUsed(doc, [name]).keys()) out.set(v, [...new Set([...(out.get(v) ?? []), ...profiles])].sort());
  }
  return out;
}

/**
 * Sort the template's variables: a credential is generated unless its placeholder keeps a vendor's
 * format around it (`sk_live_CHANGE_ME`: a key someone else issues); any other placeholder is left
 * for a human, with the profiles that need it.
 */
export function classifyTemplate(entries: readonly EnvEntry[], doc: ComposeDocument): TemplateClasses {
  const profiles = variableProfiles(doc);
  const generated: string[] = [];
  const toFill: ToFill[] = [];
  for (const { key, value } of entries) {
    if (generated.includes(key) || toFill.some((t) => t.variable === key)) continue;
    const placeholder = PLACEHOLDER.test(value);
    if (isSecretName(key) && (OWN_PLACEHOLDER.test(value) || !placeholder)) generated.push(key);
    else if (placeholder) toFill.push({ variable: key, profiles: profiles.get(key) ?? [] });
  }
  return { generated, toFill };
}

// ---- the plan -------------------------------------------------------------------------------------

export interface EnvInitPlan {
  composeFile: string;
  template: string;
  target: string;
  /** The target exists and --force replaces it. */
  replaces: boolean;
  generated: string[];
  secretLength: number;
  toFill: ToFill[];
}

export interface EnvInitOptions {
  composeFile: string;
  target: string;
  force: boolean;
}

/** What init would do; refuses (changing nothing) when the target exists without --force. */
export function planEnvInit(o: EnvInitOptions): EnvInitPlan {
  const composeFile = path.resolve(o.composeFile);
  const target = path.resolve(o.target);
  const template = path.join(path.dirname(composeFile), '.env.example');
  if (!fs.existsSync(template)) {
    throw new UserError(`${displayPath(template)} does not exist: init makes the env file from the .env.example beside the compose file`, {
      hint: 'Pass the stack file with --file (default: compose/compose.yaml).',
    });
  }
  const doc = loadComposeFile(composeFile);
  const stat = fs.lstatSync(target, { throwIfNoEntry: false });
  if (stat?.isDirectory()) throw new UserError(`${displayPath(target)} is a directory`, { hint: 'Name the env file to write, e.g. compose/.env.' });
  if (stat && !o.force) {
    throw new UserError(`${displayPath(target)} already exists; nothing was changed`, {
      hint: 'Keep it, or pass --force to replace it with new secrets. Careful: a stack that already ran keeps its first PostgreSQL, RabbitMQ and Grafana passwords in its volumes, and new ones would lock the services out.',
    });
  }
  const dir = path.dirname(target);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory())
    throw new UserError(`directory ${displayPath(dir)} does not exist`, { hint: `Create it first, or name an env file in an existing directory.` });
  const { generated, toFill } = classifyTemplate(parseEnvText(fs.readFileSync(template, 'utf8'), displayPath(template)), doc);
  return { composeFile, template, target, replaces: Boolean(stat), generated, secretLength: SECRET_LENGTH, toFill };
}

// ---- the file ----------------------------------------------------------------------------------------

const ENV_LINE = /^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*)$/;

/** The template's text with each generated variable's value replaced; comments and order stay. */
export function renderEnvText(templateText: string, values: Env, header: string[] = []): string {
  const lines = templateText.split(/\r?\n/).map((line) => {
    const m = ENV_LINE.exec(line);
    if (!m || !(m[2] in values)) return line;
    return `${m[1]}${m[2]}${m[3]}${values[m[2]]}`;
  });
  return [...header, ...lines].join('\n');
}

/** The checks `compose.ts up` makes on the env file, for the services that always run. */
export function checkForUp(doc: ComposeDocument, env: Env, placeholders: Env): EnvProblem[] {
  const services = activeServices(doc, []);
  const problems = checkEnv(env, variablesUsed(doc, services), { placeholders });
  problems.push(...checkImages(resolveDocument(doc, env, services, false)));
  return problems;
}

/**
 * Generate the secrets, check the result as `up` would, and write it: a private temporary file in
 * the target's directory (mode 0600, flushed), then moved into place in one step. Without --force
 * the move is a hard link, which fails when the target appeared in the meantime.
 */
export function writeEnvFile(plan: EnvInitPlan, randomBytes?: RandomBytes): void {
  const templateText = fs.readFileSync(plan.template, 'utf8');
  const values: Env = {};
  for (const key of plan.generated) {
    values[key] = generateSecret(plan.secretLength, randomBytes);
    registerSecret(values[key]);
  }
  const header = [
    `# Written by \`npx zx scripts/compose.ts init\` from ${path.basename(plan.template)}, with generated values for:`,
    `#   ${plan.generated.join(' ')}`,
    '# Keep this file private (mode 0600) and out of version control.',
    '',
  ];
  const text = renderEnvText(templateText, values, header);
  const env = Object.fromEntries(parseEnvText(text, displayPath(plan.target)).map((e) => [e.key, e.value]));
  const placeholders = Object.fromEntries(parseEnvText(templateText).map((e) => [e.key, e.value]));
  const problems = checkForUp(loadComposeFile(plan.composeFile), env, placeholders);
  if (problems.length) {
    throw new UserError(
      `the env file made from ${displayPath(plan.template)} would not pass the checks of compose.ts up; nothing was written:\n${problems.map((p) => `  ${p.variable} ${p.problem}`).join('\n')}`,
      {
        hint: `Fix these variables in ${displayPath(plan.template)} (a credential needs a CHANGE_ME placeholder to be generated).`,
        details: problems,
      },
    );
  }
  const tmp = path.join(path.dirname(plan.target), `.${path.basename(plan.target)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    try {
      fs.fchmodSync(fd, 0o600);
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (plan.replaces) fs.renameSync(tmp, plan.target);
    else {
      try {
        fs.linkSync(tmp, plan.target);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST')
          throw new UserError(`${displayPath(plan.target)} appeared while init ran; nothing was changed`, { hint: 'Run init again, with --force to replace it.' });
        throw e;
      }
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
