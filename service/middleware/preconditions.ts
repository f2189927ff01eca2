/**
 * Entity tags for conditional requests (RFC 9110 §8.8.3, §13.1.1). If-None-Match on reads is
 * Koa's `ctx.fresh` (jshttp/fresh, weak comparison); If-Match needs the strong comparison below.
 */

/** One entity-tag of a list: optional W/, then a quoted opaque tag. */
const ENTITY_TAG = /[ \t]*(W\/)?"([\x21\x23-\x7E\x80-\xFF]*)"[ \t]*(?:,|$)/y;

/** A strong ETag for a representation whose version is `version`. */
export function strongEtag(version: number | string): string {
  return `"${version}"`;
}

/**
 * What an If-Match field asks for: `*` (any current representation) or the opaque tags it lists.
 * Weak tags never match under strong comparison, so they are left out; a field that is not a valid
 * list matches nothing (the write is refused with 412, never applied blindly).
 */
export function parseIfMatch(field: string): '*' | string[] {
  if (field.trim() === '*') return '*';
  const tags: string[] = [];
  ENTITY_TAG.lastIndex = 0;
  while (ENTITY_TAG.lastIndex < field.length) {
    const match = ENTITY_TAG.exec(field);
    if (!match) return [];
    if (!match[1]) tags.push(match[2] ?? '');
  }
  return tags;
}
