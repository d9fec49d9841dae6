// PromQL as data: parse an expression with Prometheus' own Lezer grammar (@prometheus-io/lezer-promql),
// then list its selectors, matchers and grouping labels, and infer which labels its result carries.
// Used to check every query of dashboards and rules against the metric catalog, so a query can only
// use metrics the application (or an exporter) really serves, with labels they really have.
import { parser } from '@prometheus-io/lezer-promql';

/** Minimal view of a Lezer syntax node (what we use of @lezer/common's SyntaxNode). */
interface Node {
  name: string;
  from: number;
  to: number;
  type: { isError: boolean };
  firstChild: Node | null;
  nextSibling: Node | null;
  parent: Node | null;
}

export interface LabelMatcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface Selector {
  /** Metric name, or undefined for a selector with only label matchers. */
  metric?: string;
  matchers: LabelMatcher[];
  /** Range of `[...]` when the selector is part of a range selector, e.g. '5m'. */
  range?: string;
  /** Name of the function the (range) selector is the direct argument of, e.g. 'rate'. */
  enclosingFunction?: string;
  text: string;
}

export interface ParsedQuery {
  expr: string;
  /** Syntax errors as human-readable strings; empty when the expression parses. */
  errors: string[];
  selectors: Selector[];
  /** Every label named in by/without/on/ignoring/group_left/group_right clauses. */
  groupingLabels: string[];
  functions: string[];
  root: Node | null;
}

// ---------------------------------------------------------------------------------------------
// Grafana variables

/** Sample values for Grafana's global variables, used when parsing dashboard queries. */
export const GRAFANA_GLOBALS: Readonly<Record<string, string>> = {
  __rate_interval: '5m',
  __interval: '1m',
  __interval_ms: '60000',
  __range: '6h',
  __range_s: '21600',
  __range_ms: '21600000',
  __auto: '1m',
};

const VARIABLE = /\$\{([A-Za-z0-9_.]+)(?::[a-z]+)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_.]+)\]\]/g;

/**
 * Replace Grafana variables ($var, ${var}, ${var:fmt}, [[var]]) so the query parses as PromQL.
 * Inside string literals a template variable becomes the regex `.+` (what "All" means for our
 * multi-value variables); outside them, globals become sample durations/numbers and any other
 * variable the number 1.
 */
export function expandGrafanaVariables(expr: string, values: Record<string, string> = {}, options: { inStrings?: boolean } = {}): string {
  const inStrings = options.inStrings ?? true;
  let out = '';
  let i = 0;
  while (i < expr.length) {
    const c = expr[i];
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < expr.length && expr[j] !== c) j += c !== '`' && expr[j] === '\\' ? 2 : 1;
      const body = expr.slice(i + 1, j);
      if (!inStrings) {
        out += expr.slice(i, j + 1);
        i = j + 1;
        continue;
      }
      out += c + body.replace(VARIABLE, (_m, a, b, d) => values[a ?? b ?? d] ?? GRAFANA_GLOBALS[a ?? b ?? d] ?? '.+') + c;
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < expr.length && !['"', "'", '`'].includes(expr[j])) j++;
    out += expr.slice(i, j).replace(VARIABLE, (_m, a, b, d) => values[a ?? b ?? d] ?? GRAFANA_GLOBALS[a ?? b ?? d] ?? '1');
    i = j;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing

function children(n: Node): Node[] {
  const out: Node[] = [];
  for (let c = n.firstChild; c; c = c.nextSibling) out.push(c);
  return out;
}

function child(n: Node, name: string): Node | undefined {
  return children(n).find((c) => c.name === name);
}

/** The value of a PromQL string literal ("..." and '...' with Go escapes, `...` raw). */
export function unquote(literal: string): string {
  const q = literal[0];
  const body = literal.slice(1, -1);
  if (q === '`') return body;
  return body.replace(/\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[0-7]{3}|.)/g, (_m, e: string) => {
    if (e[0] === 'u' || e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]{3}$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return ({ n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v' } as Record<string, string>)[e] ?? e;
  });
}

function lineCol(text: string, pos: number): string {
  const before = text.slice(0, pos).split('\n');
  return `${before.length}:${before[before.length - 1].length + 1}`;
}

export function parsePromQL(expr: string): ParsedQuery {
  const result: ParsedQuery = { expr, errors: [], selectors: [], groupingLabels: [], functions: [], root: null };
  if (!expr.trim()) {
    result.errors.push('empty expression');
    return result;
  }
  const tree = parser.parse(expr);
  const root = tree.topNode as unknown as Node;
  result.root = root.firstChild;
  const visit = (n: Node): void => {
    if (n.type.isError) {
      const bad = expr.slice(n.from, Math.max(n.to, n.from + 1)) || 'end of input';
      result.errors.push(`unexpected ${JSON.stringify(bad)} at ${lineCol(expr, n.from)}`);
    }
    switch (n.name) {
      case 'VectorSelector':
        result.selectors.push(selectorOf(expr, n));
        break;
      case 'GroupingLabels':
        for (const c of children(n)) result.groupingLabels.push(labelNameOf(expr, c));
        break;
      case 'FunctionIdentifier':
        result.functions.push(expr.slice(n.from, n.to));
        break;
    }
    for (let c = n.firstChild; c; c = c.nextSibling) visit(c);
  };
  visit(root);
  return result;
}

function labelNameOf(expr: string, n: Node): string {
  if (n.name === 'QuotedLabelName') return unquote(expr.slice(n.from, n.to));
  return expr.slice(n.from, n.to);
}

function selectorOf(expr: string, n: Node): Selector {
  const sel: Selector = { matchers: [], text: expr.slice(n.from, n.to) };
  const id = child(n, 'Identifier');
  if (id) sel.metric = expr.slice(id.from, id.to);
  const lm = child(n, 'LabelMatchers');
  for (const m of lm ? children(lm) : []) {
    if (m.name === 'QuotedLabelName') {
      sel.metric = unquote(expr.slice(m.from, m.to));
      continue;
    }
    if (m.name !== 'UnquotedLabelMatcher' && m.name !== 'QuotedLabelMatcher') continue;
    const parts = children(m);
    const name = parts.find((p) => p.name === 'LabelName' || p.name === 'QuotedLabelName');
    const op = parts.find((p) => p.name === 'MatchOp');
    const value = parts.find((p) => p.name === 'StringLiteral');
    if (!name || !op || !value) continue;
    const matcher: LabelMatcher = {
      label: labelNameOf(expr, name),
      op: expr.slice(op.from, op.to) as LabelMatcher['op'],
      value: unquote(expr.slice(value.from, value.to)),
    };
    if (matcher.label === '__name__' && matcher.op === '=') sel.metric = matcher.value;
    sel.matchers.push(matcher);
  }
  // foo[5m] and the function around it, as the dashboard linter looks at them.
  let outer: Node | null = n.parent;
  if (outer?.name === 'MatrixSelector') {
    const d = child(outer, 'DurationExpr');
    if (d) sel.range = expr.slice(d.from, d.to);
  } else outer = n;
  const body = outer?.parent;
  if (body?.name === 'FunctionCallBody' && body.parent?.name === 'FunctionCall') {
    const fid = child(body.parent, 'FunctionIdentifier');
    if (fid) sel.enclosingFunction = expr.slice(fid.from, fid.to);
  }
  return sel;
}

// ---------------------------------------------------------------------------------------------
// Label inference

/** Labels of a metric (undefined: unknown metric, the caller reports it). */
export type LabelLookup = (metric: string) => ReadonlySet<string> | undefined;

export interface Inference {
  /** Labels the result carries, or undefined when it cannot be told (an unknown metric inside). */
  labels: Set<string> | undefined;
  /** by/on/... labels that the input of that clause cannot carry. */
  problems: string[];
}

const KEEP_LABEL_AGGREGATIONS = new Set(['topk', 'bottomk', 'limitk', 'limit_ratio']);
const SCALAR_FUNCTIONS = new Set(['time', 'pi', 'scalar', 'vector', 'start', 'end', 'range', 'step']);

/**
 * The label names an expression's result carries, following Prometheus' evaluation rules:
 * aggregations keep their `by` labels, one-to-one matching with `on(...)` keeps only those labels,
 * group_left/right adds the listed ones, set operators keep the left side, and so on.
 */
export function inferLabels(parsed: ParsedQuery, lookup: LabelLookup): Inference {
  const inference = new LabelInference(parsed.expr, lookup);
  const labels = parsed.root && !parsed.errors.length ? inference.infer(parsed.root) : undefined;
  return { labels, problems: inference.problems };
}

/** The matching clause of a binary operation: on/ignoring labels and group_left/right. */
interface VectorMatching {
  on?: string[];
  ignoring?: string[];
  group?: 'left' | 'right';
  include: string[];
}

/** One walk over one expression's tree: the labels of each node, and the clauses that cannot match. */
class LabelInference {
  readonly problems: string[] = [];
  private readonly expr: string;
  private readonly lookup: LabelLookup;

  constructor(expr: string, lookup: LabelLookup) {
    this.expr = expr;
    this.lookup = lookup;
  }

  infer(n: Node): Set<string> | undefined {
    switch (n.name) {
      case 'VectorSelector':
        return this.selector(n);
      case 'MatrixSelector':
      case 'SubqueryExpr':
      case 'OffsetExpr':
      case 'AnchoredExpr':
      case 'SmoothedExpr':
      case 'StepInvariantExpr':
      case 'ParenExpr':
      case 'UnaryExpr': {
        const inner = children(n).find(isExpr);
        return inner ? this.infer(inner) : new Set();
      }
      case 'NumberDurationLiteral':
      case 'StringLiteral':
        return new Set();
      case 'FunctionCall':
        return this.functionCall(n);
      case 'AggregateExpr':
        return this.aggregation(n);
      case 'BinaryExpr':
        return this.binary(n);
      default:
        return undefined;
    }
  }

  private text(n: Node): string {
    return this.expr.slice(n.from, n.to);
  }

  private grouping(n: Node | undefined): string[] {
    return n ? children(n).map((c) => labelNameOf(this.expr, c)) : [];
  }

  private isScalar(n: Node): boolean {
    if (n.name === 'NumberDurationLiteral') return true;
    if (n.name === 'ParenExpr' || n.name === 'UnaryExpr') return children(n).some((c) => c.name !== 'UnaryOp' && this.isScalar(c));
    if (n.name === 'FunctionCall') {
      const f = this.text(child(n, 'FunctionIdentifier')!);
      return SCALAR_FUNCTIONS.has(f) && f !== 'vector';
    }
    if (n.name === 'BinaryExpr') {
      const [l, r] = children(n).filter(isExpr);
      return Boolean(l && r && this.isScalar(l) && this.isScalar(r));
    }
    return false;
  }

  /** Record every label of a clause that its input cannot carry. */
  private check(clause: string, labels: string[], input: Set<string> | undefined, where: Node): void {
    if (!input) return;
    for (const l of labels)
      if (!input.has(l)) this.problems.push(`${clause}(${l}) in "${this.text(where).slice(0, 80)}": the input has no label "${l}" (it has: ${[...input].sort().join(', ') || 'none'})`);
  }

  private selector(n: Node): Set<string> | undefined {
    const sel = selectorOf(this.expr, n);
    if (!sel.metric) return undefined;
    const known = this.lookup(sel.metric);
    return known ? new Set(known) : undefined;
  }

  private functionCall(n: Node): Set<string> | undefined {
    const f = this.text(child(n, 'FunctionIdentifier')!);
    const args = children(child(n, 'FunctionCallBody')!).filter(isExpr);
    const argLabels = args.map((a) => this.infer(a));
    if (SCALAR_FUNCTIONS.has(f)) return new Set();
    if (f === 'absent' || f === 'absent_over_time') {
      const sel = args[0] ? findSelector(args[0]) : undefined;
      return new Set(
        sel
          ? selectorOf(this.expr, sel)
              .matchers.filter((m) => m.op === '=' && m.label !== '__name__')
              .map((m) => m.label)
          : [],
      );
    }
    if (f === 'label_replace' || f === 'label_join') {
      const base = argLabels[0];
      const dst = args[1] ? unquote(this.text(args[1])) : undefined;
      return base && dst ? new Set([...base, dst]) : base;
    }
    if (f === 'histogram_quantile' || f === 'histogram_fraction') {
      const base = argLabels[argLabels.length - 1];
      if (!base) return undefined;
      const out = new Set(base);
      out.delete('le');
      return out;
    }
    const vectorArg = args.findIndex((a) => !this.isScalar(a) && a.name !== 'StringLiteral');
    return vectorArg >= 0 ? argLabels[vectorArg] : new Set();
  }

  private aggregation(n: Node): Set<string> | undefined {
    const op = this.text(child(n, 'AggregateOp')!);
    const mod = child(n, 'AggregateModifier');
    const args = children(child(n, 'FunctionCallBody')!).filter(isExpr);
    const input = this.infer(args[args.length - 1]);
    if (KEEP_LABEL_AGGREGATIONS.has(op)) return input;
    let out: Set<string> | undefined = new Set();
    if (mod) {
      const labels = this.grouping(child(mod, 'GroupingLabels'));
      const by = Boolean(child(mod, 'By'));
      this.check(by ? 'by' : 'without', labels, input, n);
      if (by) out = new Set(labels);
      else out = input ? new Set([...input].filter((l) => !labels.includes(l))) : undefined;
    }
    if (op === 'count_values' && out && args[0]) out.add(unquote(this.text(args[0])));
    return out;
  }

  private binary(n: Node): Set<string> | undefined {
    const parts = children(n);
    const [lhs, rhs] = parts.filter(isExpr);
    const opNode = parts.find((p) => !isExpr(p) && !['BoolModifier', 'MatchingModifierClause', 'FillModifier'].includes(p.name))!;
    const op = this.text(opNode).toLowerCase();
    const l = this.infer(lhs);
    const r = this.infer(rhs);
    if (this.isScalar(lhs)) return r;
    if (this.isScalar(rhs)) return l;
    const mm = parts.find((p) => p.name === 'MatchingModifierClause');
    const m = mm ? this.matching(mm, l, r, n) : { include: [] };
    if (op === 'and' || op === 'unless') return l;
    if (op === 'or') return l && r ? new Set([...l, ...r]) : undefined;
    if (m.group === 'left') return l ? new Set([...l, ...m.include]) : undefined;
    if (m.group === 'right') return r ? new Set([...r, ...m.include]) : undefined;
    if (!l) return undefined;
    if (m.on) return new Set([...l].filter((x) => m.on!.includes(x)));
    if (m.ignoring) return new Set([...l].filter((x) => !m.ignoring!.includes(x)));
    return l;
  }

  /** Read on/ignoring/group_left/group_right and check their labels against both sides. */
  private matching(mm: Node, l: Set<string> | undefined, r: Set<string> | undefined, where: Node): VectorMatching {
    const mc = children(mm);
    const lists = mc.filter((c) => c.name === 'GroupingLabels');
    const m: VectorMatching = { include: this.grouping(lists[1]) };
    if (mc.some((c) => c.name === 'On')) m.on = this.grouping(lists[0]);
    else m.ignoring = this.grouping(lists[0]);
    if (mc.some((c) => c.name === 'GroupLeft')) m.group = 'left';
    if (mc.some((c) => c.name === 'GroupRight')) m.group = 'right';
    if (m.on) {
      this.check('on', m.on, l, where);
      this.check('on', m.on, r, where);
    }
    this.check(m.group === 'left' ? 'group_left' : 'group_right', m.include, m.group === 'left' ? r : l, where);
    return m;
  }
}

function findSelector(n: Node): Node | undefined {
  if (n.name === 'VectorSelector') return n;
  for (const c of children(n)) {
    const s = findSelector(c);
    if (s) return s;
  }
  return undefined;
}

const EXPR_NODES = new Set([
  'AggregateExpr',
  'BinaryExpr',
  'FunctionCall',
  'MatrixSelector',
  'NumberDurationLiteral',
  'OffsetExpr',
  'AnchoredExpr',
  'SmoothedExpr',
  'ParenExpr',
  'StringLiteral',
  'SubqueryExpr',
  'UnaryExpr',
  'VectorSelector',
  'StepInvariantExpr',
]);

function isExpr(n: Node): boolean {
  return EXPR_NODES.has(n.name);
}

/** Every `$labels.name` / `$labels["name"]` a Prometheus alert template refers to. */
export function templateLabelRefs(template: string): string[] {
  const out = new Set<string>();
  for (const m of template.matchAll(/\$labels\.([A-Za-z_][A-Za-z0-9_]*)|\$labels\s*\[\s*"([^"]+)"\s*\]|index\s+\$labels\s+"([^"]+)"/g)) out.add(m[1] ?? m[2] ?? m[3]);
  return [...out];
}
