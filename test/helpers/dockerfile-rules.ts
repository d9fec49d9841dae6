// The rules every ConduitLLM Dockerfile must meet, checked on the parse tree of a real Dockerfile
// parser (dockerfile-ast): multi-stage, bases pinned by digest and never `latest`, a non-root
// USER, an exec-form HEALTHCHECK on the app's health endpoint, and the OCI labels.
import { DockerfileParser, type From, type Instruction } from 'dockerfile-ast';

export interface DockerfileExpectations {
  uid: number;
  healthPath: string;
}

export interface BaseImage {
  ref: string;
  name: string;
  tag?: string;
  digest?: string;
}

export const OCI_LABELS = ['org.opencontainers.image.source', 'org.opencontainers.image.revision', 'org.opencontainers.image.version', 'org.opencontainers.image.created'];

function expand(text: string, args: Record<string, string>): string {
  return text.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (m, n: string) => args[n] ?? m);
}

export function parseRef(ref: string): BaseImage {
  const [withoutDigest, digest] = ref.split('@');
  const slash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  const hasTag = colon > slash;
  return { ref, name: hasTag ? withoutDigest.slice(0, colon) : withoutDigest, tag: hasTag ? withoutDigest.slice(colon + 1) : undefined, digest };
}

export function analyse(content: string) {
  const df = DockerfileParser.parse(content);
  const initial: Record<string, string> = {};
  for (const a of df.getInitialARGs()) {
    const p = a.getProperty();
    if (p?.getName()) initial[p.getName()] = p.getValue() ?? '';
  }
  const froms: From[] = df.getFROMs();
  const stages = new Set<string>();
  const bases: BaseImage[] = [];
  for (const f of froms) {
    const words = (f.getArgumentsContent() ?? '').split(/\s+/).filter((w) => !w.startsWith('--'));
    const image = expand(words[0] ?? '', initial);
    if (!stages.has(image)) bases.push(parseRef(image));
    const stage = f.getBuildStage();
    if (stage) stages.add(stage);
  }
  // Instructions of the final stage: everything after the last FROM.
  const all: Instruction[] = df.getInstructions();
  const lastFrom = froms[froms.length - 1];
  const finalStage = all.filter((i) => lastFrom && i.getRange().start.line > lastFrom.getRange().start.line);
  return { df, froms, bases, finalStage, initial };
}

/** Every rule broken, as readable sentences (empty: the Dockerfile passes). */
export function dockerfileProblems(content: string, expect: DockerfileExpectations): string[] {
  const problems: string[] = [];
  const { froms, bases, finalStage } = analyse(content);
  if (froms.length < 2) problems.push(`not multi-stage (${froms.length} FROM)`);
  for (const b of bases) {
    if (b.name === 'scratch') continue;
    if (!b.tag && !b.digest) problems.push(`base ${b.ref} has neither tag nor digest`);
    if (b.tag === 'latest') problems.push(`base ${b.ref} uses the tag latest`);
    if (!b.digest || !/^sha256:[0-9a-f]{64}$/.test(b.digest)) problems.push(`base ${b.ref} is not pinned by a sha256 digest`);
  }
  const users = finalStage.filter((i) => i.getKeyword() === 'USER');
  const user = users.length ? (users[users.length - 1].getArgumentsContent() ?? '').trim() : '';
  if (!user) problems.push('the final stage sets no USER (runs as root)');
  else {
    const [uid] = user.split(':');
    if (uid === 'root' || uid === '0') problems.push(`USER ${user} is root`);
    else if (Number(uid) !== expect.uid) problems.push(`USER ${user} is not UID ${expect.uid}`);
  }
  const hcs = finalStage.filter((i) => i.getKeyword() === 'HEALTHCHECK');
  const hc = hcs.length ? (hcs[hcs.length - 1].getArgumentsContent() ?? '') : '';
  if (!hc) problems.push('no HEALTHCHECK in the final stage');
  else if (/^\s*NONE\b/i.test(hc)) problems.push('HEALTHCHECK NONE');
  else {
    const cmd = /CMD\s+(\[.*\])\s*$/s.exec(hc.replace(/\\\n/g, ' '));
    if (!cmd) problems.push('HEALTHCHECK is not in exec form (CMD ["..."]): it would need a shell');
    else if (!cmd[1].includes(expect.healthPath)) problems.push(`HEALTHCHECK does not probe ${expect.healthPath}`);
  }
  const labels = finalStage
    .filter((i) => i.getKeyword() === 'LABEL')
    .map((i) => i.getArgumentsContent() ?? '')
    .join(' ');
  for (const l of OCI_LABELS) if (!labels.includes(`${l}=`)) problems.push(`missing label ${l}`);
  for (const run of finalStage.filter((i) => i.getKeyword() === 'RUN')) {
    const text = run.getArgumentsContent() ?? '';
    if (/\b(apt-get|apt|apk|dnf|yum|microdnf)\s+(install|add)\b/.test(text)) problems.push(`the final stage installs packages: ${text.slice(0, 60)}`);
  }
  return problems;
}
