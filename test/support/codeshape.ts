// The shape of the code under scripts/ and bench/, measured with the TypeScript parser: the local
// import graph (levels, cycles) and the length of every function (nested functions measured on their
// own: a function's lines minus the lines of the functions inside it). Used by the architecture test;
// run directly (`node --import tsx test/support/codeshape.ts`) it prints the longest functions and
// the deepest import chains.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface FunctionLength {
  file: string;
  line: number;
  name: string;
  /** Lines of the function, without the lines of the functions nested in it. */
  lines: number;
}

export interface ImportEdge {
  from: string;
  to: string;
  /** `import type` / `export type`: erased at run time, but still a dependency of the code. */
  typeOnly: boolean;
}

export function sourceFiles(dirs = ['scripts', 'bench']): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push(p);
    }
  };
  for (const d of dirs) if (fs.existsSync(path.join(REPO, d))) walk(path.join(REPO, d));
  return out.sort();
}

function parse(file: string): ts.SourceFile {
  return ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
}

/** Relative imports and re-exports of `file`, resolved to absolute paths. */
export function importsOf(file: string): ImportEdge[] {
  const src = parse(file);
  const edges: ImportEdge[] = [];
  for (const n of src.statements) {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      const spec = n.moduleSpecifier.text;
      if (!spec.startsWith('.')) continue;
      const typeOnly = ts.isImportDeclaration(n) ? !!n.importClause?.isTypeOnly : n.isTypeOnly;
      edges.push({ from: file, to: path.resolve(path.dirname(file), spec), typeOnly });
    }
  }
  // import('...') expressions (lazy loads) are dependencies too.
  const visit = (node: ts.Node) => {
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      const spec = node.arguments[0].text;
      if (spec.startsWith('.')) edges.push({ from: file, to: path.resolve(path.dirname(file), spec), typeOnly: false });
    }
    node.forEachChild(visit);
  };
  visit(src);
  return edges;
}

function functionName(n: ts.Node): string {
  const named = n as ts.Node & { name?: ts.Node };
  if (named.name) return named.name.getText();
  const p = n.parent;
  if (p && (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p))) return p.name.getText();
  if (p && ts.isCallExpression(p)) return `(callback of ${p.expression.getText().slice(0, 40)})`;
  return '(anonymous)';
}

/** Every function-like node of the file with its own length. */
export function functionLengths(file: string): FunctionLength[] {
  const src = parse(file);
  const lineOf = (pos: number) => src.getLineAndCharacterOfPosition(pos).line;
  const out: FunctionLength[] = [];
  const visit = (node: ts.Node): number => {
    // Returns the lines this subtree's outermost functions span (so the parent can subtract them).
    const isFn =
      ts.isFunctionLike(node) &&
      !ts.isFunctionTypeNode(node) &&
      !ts.isMethodSignature(node) &&
      !ts.isCallSignatureDeclaration(node) &&
      !ts.isConstructSignatureDeclaration(node) &&
      (node as ts.FunctionLikeDeclaration).body !== undefined;
    let nested = 0;
    node.forEachChild((c) => {
      nested += visit(c);
    });
    if (!isFn) return nested;
    const span = lineOf(node.getEnd()) - lineOf(node.getStart(src)) + 1;
    out.push({ file: path.relative(REPO, file), line: lineOf(node.getStart(src)) + 1, name: functionName(node), lines: span - nested });
    return span;
  };
  visit(src);
  return out;
}

/** Longest import chain (in modules, `import type` included) starting at each file; cycles are reported, not followed. */
export function importLevels(files: string[]): { levels: Map<string, number>; chains: Map<string, string[]>; cycles: string[][] } {
  const known = new Set(files);
  const graph = new Map(
    files.map((f) => [
      f,
      [
        ...new Set(
          importsOf(f)
            .map((e) => e.to)
            .filter((t) => known.has(t)),
        ),
      ],
    ]),
  );
  const levels = new Map<string, number>();
  const chains = new Map<string, string[]>();
  const cycles: string[][] = [];
  const visiting: string[] = [];
  const level = (f: string): number => {
    const done = levels.get(f);
    if (done !== undefined) return done;
    if (visiting.includes(f)) {
      cycles.push([...visiting.slice(visiting.indexOf(f)), f]);
      return 0;
    }
    visiting.push(f);
    let best: string[] = [];
    for (const d of graph.get(f)!) {
      level(d);
      const c = chains.get(d) ?? [];
      if (c.length > best.length) best = c;
    }
    visiting.pop();
    chains.set(f, [f, ...best]);
    levels.set(f, best.length + 1);
    return best.length + 1;
  };
  for (const f of files) level(f);
  return { levels, chains, cycles };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const files = sourceFiles();
  const limit = Number(process.argv[2] ?? 80);
  const long = files
    .flatMap(functionLengths)
    .filter((f) => f.lines > limit)
    .sort((a, b) => b.lines - a.lines);
  console.log(`functions over ${limit} lines: ${long.length}`);
  for (const f of long) console.log(`  ${f.lines}\t${f.file}:${f.line} ${f.name}`);
  const { levels, chains, cycles } = importLevels(files);
  const deepest = [...levels.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5);
  console.log(`import levels: ${deepest[0]?.[1] ?? 0} at most; cycles: ${cycles.length}`);
  for (const [f] of deepest)
    console.log(
      `  ${chains
        .get(f)!
        .map((c) => path.relative(REPO, c))
        .join(' -> ')}`,
    );
}
