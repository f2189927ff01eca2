// Reads values.yaml with its comments: every key and its documentation comment.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, parseDocument } from 'yaml';
import type { Node, Pair } from 'yaml';
import { chartDir } from './render.js';

export interface ValueDoc {
  /** Dotted path, e.g. rollout.analysis.window. */
  key: string;
  /** Comment lines directly above the key (without the leading `#` and `--`). */
  comment: string;
  /** Documented as one value (a leaf, or a map marked with `# --` such as resources). */
  leaf: boolean;
  /** Default rendered as compact YAML/JSON. */
  default: string;
}

export function readValuesDocs(file = path.join(chartDir, 'values.yaml')): ValueDoc[] {
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const out: ValueDoc[] = [];
  const walk = (node: unknown, prefix: string, inheritedFirstComment: string | undefined): void => {
    if (!isMap(node)) return;
    node.items.forEach((pair: Pair, i: number) => {
      const keyNode = pair.key as Node | null;
      const key = isScalar(keyNode) ? String(keyNode.value) : '';
      const full = prefix ? `${prefix}.${key}` : key;
      let raw = keyNode?.commentBefore ?? '';
      if (!raw && i === 0 && inheritedFirstComment) raw = inheritedFirstComment;
      const marked = /(^|\n)\s*--/.test(raw);
      const lines = raw.split('\n');
      // With a `# --` marker the documentation starts there (anything above is a section/file header).
      const start = marked ? lines.findLastIndex((l) => /^\s*--/.test(l)) : 0;
      const comment = lines
        .slice(start)
        .map((l) => l.replace(/^\s*--\s?/, '').trim())
        .filter((l) => l !== '')
        .join(' ');
      const value = pair.value as Node | null;
      const isLeaf = !isMap(value) || value.items.length === 0 || marked;
      out.push({ key: full, comment, leaf: isLeaf, default: JSON.stringify(value && 'toJSON' in value ? value.toJSON() : null) });
      if (!isLeaf) walk(value, full, value.commentBefore ?? undefined);
    });
  };
  walk(doc.contents, '', undefined);
  return out;
}

const BEGIN = '<!-- values-table:begin (generated from values.yaml by `npx tsx test/chart/values-doc.ts --write`) -->';
const END = '<!-- values-table:end -->';
export const readmePath = path.join(chartDir, 'README.md');

/** Markdown table of every documented value (leaves only), in values.yaml order. */
export function valuesTable(docs = readValuesDocs()): string {
  const esc = (t: string): string => t.replace(/\|/g, '\\|');
  const rows = docs.filter((d) => d.leaf).map((d) => `| \`${d.key}\` | \`${esc(d.default)}\` | ${esc(d.comment)} |`);
  return [BEGIN, '| Key | Default | Description |', '|---|---|---|', ...rows, END].join('\n');
}

/** README text with the generated table in place of the marked block. */
export function readmeWithTable(readme: string, table = valuesTable()): string {
  const a = readme.indexOf(BEGIN);
  const b = readme.indexOf(END);
  if (a < 0 || b < 0) throw new Error('README.md lacks the values-table markers');
  return readme.slice(0, a) + table + readme.slice(b + END.length);
}

if (process.argv.includes('--write')) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(readmePath, readmeWithTable(readFileSync(readmePath, 'utf8')));
  console.log(`updated ${readmePath}`);
}
