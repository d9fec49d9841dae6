// The chart's values schema, generated from chart/values.yaml: the structure and types from the
// defaults, every description from the key's comment (`# --` for helm-docs, a plain comment on a
// map), and the constraints the application imposes from VALUE_RULES below. One source of truth:
// a key added to values.yaml without a comment is an error, and `scripts/docs.ts --check` fails when
// schemas/values.schema.json or its identical copy chart/values.schema.json is stale.
import fs from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Pair, type YAMLMap } from 'yaml';
import { UserError } from '../core/errors.ts';
import { CHART_DIR, displayPath, SCHEMAS_DIR } from '../core/paths.ts';

export type JsonSchema = { [key: string]: unknown };

export const VALUES_FILE = path.join(CHART_DIR, 'values.yaml');
export const VALUES_SCHEMA_FILES = [path.join(SCHEMAS_DIR, 'values.schema.json'), path.join(CHART_DIR, 'values.schema.json')];

/** Maps with keys of the user's choosing (labels, annotations, env, PostgreSQL parameters, log categories). */
const STRING_MAPS = /(\.|^)(commonLabels|commonAnnotations|podAnnotations|podLabels|nodeSelector|annotations|env|parameters|additionalLabels|matchLabels|levels)$/;
/** Lists of Kubernetes objects passed through as they are. */
const OBJECT_LISTS = /(\.|^)(extraEnv|extraVolumes|extraVolumeMounts|tolerations|extraEgress|parentRefs)$/;

const intOrPercent = (min: number): JsonSchema => ({
  oneOf: [
    { type: 'integer', minimum: min },
    { type: 'string', pattern: min > 0 ? '^([1-9][0-9]?|100)%$' : '^([0-9]|[1-9][0-9]|100)%$' },
  ],
});
const DNS_NAME = '^$|^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$';
const HTTP_URL = '^$|^https?://[^\\s]+$';

/** Constraints by values path (first match order does not matter: every matching rule applies). */
export const VALUE_RULES: ReadonlyArray<readonly [RegExp, JsonSchema]> = [
  [/^global\.environment$/, { enum: ['local', 'development', 'staging', 'production'] }],
  [/^global\.imagePullSecrets$|\.image\.pullSecrets$/, { items: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' } }],
  [/^global\.imageRegistry$|\.image\.registry$/, { pattern: '^$|^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$' }],
  [/\.image\.repository$/, { pattern: '^[a-z0-9]+([._/-][a-z0-9]+)*$', minLength: 1 }],
  [/\.image\.tag$/, { pattern: '^$|^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$' }],
  [/\.image\.digest$/, { pattern: '^$|^sha256:[a-f0-9]{64}$' }],
  [/\.pullPolicy$/, { enum: ['Always', 'IfNotPresent', 'Never'] }],
  [/^(nameOverride|fullnameOverride)$/, { pattern: '^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 53 }],
  [/existingSecret$/, { pattern: DNS_NAME, maxLength: 253 }],
  [/^database\.mode$/, { enum: ['cnpg', 'external'] }],
  [/^database\.name$/, { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }],
  [/^database\.auth\.username$/, { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }],
  // DATABASE_URL is not URL-decoded by the app: only letters and digits survive.
  [/^database\.auth\.password$/, { pattern: '^[A-Za-z0-9]*$' }],
  [/^database\.maxConnections$/, { minimum: 20 }],
  [/^database\.reservedConnections$/, { minimum: 3 }],
  [/^database\.pool\.\w+\.minPoolSize$/, { minimum: 0 }],
  [/^database\.pool\.\w+\.maxPoolSize$/, { minimum: 1 }],
  // Hosts only: no scheme, port, path (a Redis "/db" suffix breaks the app's parser) or credentials.
  [/^database\.external\.host$|^redis\.external\.host$|^rabbitmq\.external\.host$/, { pattern: '^[^/:@?#\\s]*$' }],
  [/\.port$/, { minimum: 1, maximum: 65535 }],
  [/^database\.external\.sslMode$/, { enum: ['', 'Disable', 'Allow', 'Prefer', 'Require', 'VerifyCA', 'VerifyFull'] }],
  [/^database\.cnpg\.instances$/, { minimum: 1 }],
  [/^database\.cnpg\.imageName$/, { pattern: '^[^:@\\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$' }],
  [/\.(size|storage)$/, { pattern: '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$' }],
  [/^database\.cnpg\.podAntiAffinityType$/, { enum: ['preferred', 'required'] }],
  [/^redis\.mode$/, { enum: ['standalone', 'external', 'none'] }],
  // A URL as managed services hand it out, but without password (that stays in a Secret) and without
  // the "/db" suffix the app cannot parse.
  [/^redis\.external\.url$/, { pattern: '^$|^rediss?://([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$' }],
  // REDIS_URL carries the password; the app's parser splits on ',' and does not URL-decode.
  [/^redis\.auth\.password$/, { pattern: '^[A-Za-z0-9]*$' }],
  [/^redis\.standalone\.maxmemory$/, { pattern: '^[0-9]+(b|kb|mb|gb|k|m|g)?$' }],
  [/^redis\.standalone\.maxmemoryPolicy$/, { enum: ['noeviction', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl'] }],
  [/^rabbitmq\.mode$/, { enum: ['operator', 'external', 'none'] }],
  [/^rabbitmq\.vhost$/, { pattern: '^/[^\\s]*$' }],
  [/^rabbitmq\.operator\.replicas$/, { minimum: 1 }],
  [/^rabbitmq\.operator\.additionalPlugins$/, { items: { type: 'string', pattern: '^[a-z_]+$' } }],
  [/^mediaStorage\.type$/, { enum: ['inmemory', 's3'] }],
  [/^mediaStorage\.s3\.(endpoint|publicBaseUrl)$/, { pattern: HTTP_URL }],
  [/\.replicaCount$/, { minimum: 0 }],
  [/\.autoscaling\.(minReplicas|maxReplicas)$/, { minimum: 1 }],
  [/\.target(CPU|Memory)UtilizationPercentage$/, { minimum: 0, maximum: 100 }],
  [/\.averageValue$/, { pattern: '^[0-9]+(\\.[0-9]+)?(m|k|M|G)?$' }],
  [/\.metricName$/, { pattern: '^$|^[a-zA-Z_:][a-zA-Z0-9_:]*$' }],
  [/\.stabilizationWindowSeconds$/, { minimum: 0, maximum: 3600 }],
  [/\.(podsPerMinute|podsPerTwoMinutes)$/, { minimum: 1 }],
  // A PDB that allows no disruption blocks node drains.
  [/\.pdb\.maxUnavailable$/, intOrPercent(1)],
  [/\.updateStrategy\.maxSurge$/, intOrPercent(0)],
  [/\.updateStrategy\.maxUnavailable$/, intOrPercent(0)],
  [/\.service\.type$/, { enum: ['ClusterIP', 'NodePort', 'LoadBalancer'] }],
  [/\.serviceAccount\.name$/, { pattern: DNS_NAME }],
  // Pod Security "restricted" cannot be switched off from values.
  [/\.seccompProfile\.type$/, { enum: ['RuntimeDefault', 'Localhost'] }],
  [/SecurityContext\.runAsNonRoot$/, { const: true }],
  [/containerSecurityContext\.allowPrivilegeEscalation$/, { const: false }],
  [/containerSecurityContext\.privileged$/, { const: false }],
  [/containerSecurityContext\.capabilities\.drop$/, { contains: { const: 'ALL' } }],
  [/\.(runAsUser|runAsGroup|fsGroup)$/, { minimum: 1 }],
  [/\.probes\.\w+\.path$/, { pattern: '^/[^\\s]*$' }],
  [/\.probes\.\w+\.(periodSeconds|failureThreshold|timeoutSeconds)$/, { minimum: 1 }],
  // Endpoints need 10-15 s to stop routing; in-flight streams need >= 60 s to finish.
  [/\.preStopSleepSeconds$/, { minimum: 10, maximum: 15 }],
  [/\.terminationGracePeriodSeconds$/, { minimum: 60 }],
  [/\.topologySpread\.\w+MaxSkew$/, { minimum: 1 }],
  [/\.whenUnsatisfiable$/, { enum: ['DoNotSchedule', 'ScheduleAnyway'] }],
  [/\.priorityClassName$/, { pattern: DNS_NAME }],
  [/\.(apiExternalUrl|adminApiExternalUrl)$/, { pattern: HTTP_URL }],
  [/^app\.aspnetcoreEnvironment$/, { enum: ['Production', 'Staging', 'Development'] }],
  [/^logging\.format$/, { enum: ['json', 'simple'] }],
  // Logging__LogLevel__<category>: a category is a .NET type or namespace prefix; the value one of LogLevel's names.
  [
    /^logging\.levels$/,
    {
      propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_.]*$' },
      additionalProperties: { enum: ['Trace', 'Debug', 'Information', 'Warning', 'Error', 'Critical', 'None', null] },
    },
  ],
  [/^ingress\.proxyTimeoutSeconds$/, { minimum: 600 }],
  [/^ingress\.proxyBodySize$/, { pattern: '^[0-9]+[kmg]?$' }],
  [/^ingress\.className$/, { pattern: DNS_NAME }],
  [/^ingress\.tls\.clusterIssuer$/, { pattern: DNS_NAME }],
  [/^ingress\.hosts\.\w+$/, { pattern: '^$|^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$' }],
  [/^gatewayApi\.requestTimeout$/, { pattern: '^([0-9]{1,5}(h|m|s|ms)){1,4}$' }],
  [/^networkPolicy\.apiEgress\.(cidrs|except)$/, { items: { type: 'string', pattern: '^[0-9a-fA-F:.]+/[0-9]{1,3}$' } }],
  [/^networkPolicy\.externalServices\.(database|redis|rabbitmq)\.cidrs$/, { items: { type: 'string', pattern: '^[0-9a-fA-F:.]+/[0-9]{1,3}$' } }],
  [/^monitoring\.adminScrapeConfig\.keyFile$/, { pattern: '^$|^/' }],
  [/^rabbitmq\.operator\.delayedMessageExchange\.sha256$/, { pattern: '^[0-9a-f]{64}$' }],
  [/^rabbitmq\.operator\.delayedMessageExchange\.version$/, { pattern: '^[0-9]+\\.[0-9]+\\.[0-9]+$' }],
  [/^rabbitmq\.operator\.delayedMessageExchange\.url$/, { pattern: '^(https?|file)://[^\\s]+$' }],
  [/^monitoring\.adminScrapeConfig\.namespace$/, { pattern: DNS_NAME }],
  [/^networkPolicy\.apiEgress\.ports$/, { items: { type: 'integer', minimum: 1, maximum: 65535 } }],
  [/^backup\.schedule$/, { pattern: '^(@(hourly|daily|weekly|monthly|yearly|annually|midnight)|[0-9*/,-]+ [0-9*/,-]+ [0-9*/,?LW-]+ [0-9A-Za-z*/,-]+ [0-9A-Za-z*/,?L#-]+)$' }],
  [/^backup\.timeZone$/, { pattern: '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' }],
  [/^backup\.retention$/, { pattern: '^[1-9][0-9]*[dwm]$' }],
  [/^backup\.destination\.url$/, { pattern: '^$|^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\\s]*)?$' }],
  [/^backup\.destination\.endpoint$/, { pattern: HTTP_URL }],
  [/^backup\.cnpg\.compression$/, { enum: ['gzip', 'bzip2', 'snappy'] }],
  [/^backup\.cnpg\.target$/, { enum: ['prefer-standby', 'primary'] }],
  [/^backup\.job\.rcloneUser$/, { minimum: 1 }],
  [/^backup\.job\.scratchSize$/, { pattern: '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$' }],
  [/^backup\.job\.(startingDeadlineSeconds|activeDeadlineSeconds)$/, { minimum: 60 }],
  [/^backup\.job\.(backoffLimit|successfulJobsHistoryLimit|failedJobsHistoryLimit)$/, { minimum: 0, maximum: 10 }],
  [/^backup\.preUpgrade\.mode$/, { enum: ['auto', 'always', 'never'] }],
  [/^backup\.networkPolicy\.(s3Cidrs|databaseCidrs)$/, { items: { type: 'string', pattern: '^[0-9a-fA-F:.]+/[0-9]{1,3}$' }, minItems: 1 }],
  [/^monitoring\.(serviceMonitor|adminScrapeConfig)\.interval$/, { pattern: '^([0-9]+(ms|s|m|h))+$' }],
  [/^monitoring\.prometheusRule\.disabled$/, { items: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_]*$' }, uniqueItems: true }],
  [
    /^monitoring\.prometheusRule\.overrides$/,
    {
      type: 'object',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        properties: {
          severity: { description: 'New severity label.', enum: ['critical', 'warning', 'info'] },
          for: { description: 'New `for` duration.', type: 'string', pattern: '^([0-9]+(ms|s|m|h|d|w|y))+$' },
        },
      },
    },
  ],
  [/^monitoring\.prometheusRule\.runbookBaseUrl$/, { pattern: HTTP_URL }],
  [/^monitoring\.dashboards\.namespace$/, { pattern: '^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' }],
];

function resourcesDefinition(): JsonSchema {
  const quantity = { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)?(m|Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$' };
  const group = (what: string): JsonSchema => ({
    type: 'object',
    description: `Resource ${what}.`,
    additionalProperties: false,
    properties: {
      cpu: { description: `CPU ${what}.`, ...quantity },
      memory: { description: `Memory ${what}.`, ...quantity },
      'ephemeral-storage': { description: `Ephemeral storage ${what}.`, ...quantity },
    },
  });
  return { type: 'object', additionalProperties: false, properties: { requests: group('requests'), limits: group('limits') } };
}

/** Generate the values schema from the text of values.yaml. Throws a UserError listing undocumented keys. */
export function generateValuesSchema(valuesYaml: string, file: string = VALUES_FILE): JsonSchema {
  const lineCounter = new LineCounter();
  const doc = parseDocument(valuesYaml, { lineCounter });
  if (doc.errors.length) throw new UserError(`${displayPath(file)}: ${doc.errors[0].message}`);
  const undocumented: string[] = [];

  // The comment of the first key of a map is attached to the map itself by the YAML parser.
  const describe = (pair: Pair, parent: YAMLMap, index: number, at: string): string => {
    const key = pair.key as { commentBefore?: string | null; range?: [number, number, number] };
    const raw = key.commentBefore || (index === 0 ? parent.commentBefore : '') || '';
    const lines = raw.split('\n').map((l) => l.trim());
    const i = lines.findIndex((l) => l.startsWith('--'));
    if (i >= 0)
      return lines
        .slice(i)
        .map((l) => l.replace(/^--\s*/, ''))
        .join(' ')
        .trim();
    const last = lines.filter(Boolean).pop();
    if (last && isMap(pair.value) && pair.value.items.length) return last;
    const line = key.range ? lineCounter.linePos(key.range[0]).line : 0;
    undocumented.push(`${at} (line ${line})`);
    return '';
  };

  const schemaFor = (node: unknown, at: string): JsonSchema => {
    if (/(\.|^)resources$/.test(at)) return { $ref: '#/definitions/resources' };
    if (STRING_MAPS.test(at)) return { type: 'object', additionalProperties: { type: 'string' } };
    if (OBJECT_LISTS.test(at)) return { type: 'array', items: { type: 'object' } };
    if (at.split('.').pop() === 'affinity') return { type: 'object' };
    if (isMap(node)) {
      const properties: Record<string, JsonSchema> = {};
      node.items.forEach((pair, index) => {
        const k = String((pair.key as { value: unknown }).value);
        const p = at ? `${at}.${k}` : k;
        const child = schemaFor(pair.value, p);
        properties[k] = { description: describe(pair, node, index, p), ...child };
      });
      return { type: 'object', additionalProperties: false, properties };
    }
    if (isSeq(node)) {
      const first = node.items[0];
      return { type: 'array', items: { type: isScalar(first) && typeof first.value === 'number' ? 'integer' : 'string' } };
    }
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v === 'boolean') return { type: 'boolean' };
    if (typeof v === 'number') return { type: Number.isInteger(v) ? 'integer' : 'number' };
    return { type: 'string' };
  };

  const root = schemaFor(doc.contents, '');
  if (undocumented.length) {
    throw new UserError(`${displayPath(file)}: ${undocumented.length} key(s) without a description: ${undocumented.join(', ')}`, {
      hint: 'Add a `# -- description` comment above each key (a plain comment is enough for a map).',
    });
  }
  const applyRules = (node: JsonSchema, at: string) => {
    for (const [re, patch] of VALUE_RULES) {
      if (!at || !re.test(at)) continue;
      if (patch.oneOf) delete node.type;
      if (patch.additionalProperties && typeof patch.additionalProperties === 'object') delete node.properties;
      Object.assign(node, structuredClone(patch));
    }
    const props = node.properties as Record<string, JsonSchema> | undefined;
    if (props) for (const [k, v] of Object.entries(props)) applyRules(v, at ? `${at}.${k}` : k);
  };
  applyRules(root, '');
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://conduit.example/schemas/values.schema.json',
    title: 'Values of the conduit Helm chart',
    description:
      'Values of the conduit chart. Strict: unknown keys are rejected. Generated from the comments and defaults of chart/values.yaml by scripts/lib/domain/values-schema.ts (npx zx scripts/docs.ts); do not edit by hand.',
    ...root,
    definitions: { resources: resourcesDefinition() },
  };
}

export function renderValuesSchema(): string {
  return JSON.stringify(generateValuesSchema(fs.readFileSync(VALUES_FILE, 'utf8')), null, 2) + '\n';
}
