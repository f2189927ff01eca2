/**
 * Entity tags for conditional requests (RFC 9110 §8.8.3, §13.1.1–13.1.2).
 * Not jshttp/fresh (Koa's ctx.fresh): it ignores If-None-Match whenever the request says
 * `Cache-Control: no-cache`, which fetch() adds to every conditional request, so browsers would
 * never get a 304. That directive is addressed to caches; an origin server evaluates the condition.
 */

/** One entity-tag of a list: optional W/, then a quoted opaque tag. */
const ENTITY_TAG = /[ \t]*(W\/)?"([\x21\x23-\x7E\x80-\xFF]*)"[ \t]*(?:,|$)/y;

interface EntityTag {
  weak: boolean;
  opaque: string;
}

/** A strong ETag for a representation whose version is `version`. */
export function strongEtag(version: number | string): string {
  return `"${version}"`;
}

/** `*`, the tags of a valid list, or undefined for a field that is not a valid list. */
function parseList(field: string): '*' | EntityTag[] | undefined {
  if (field.trim() === '*') return '*';
  const tags: EntityTag[] = [];
  ENTITY_TAG.lastIndex = 0;
  while (ENTITY_TAG.lastIndex < field.length) {
    const match = ENTITY_TAG.exec(field);
    if (!match) return undefined;
    tags.push({ weak: match[1] !== undefined, opaque: match[2] ?? '' });
  }
  return tags;
}

/**
 * What an If-Match field asks for: `*` (any current representation) or the opaque tags it lists.
 * Weak tags never match under strong comparison, so they are left out; a field that is not a valid
 * list matches nothing (the write is refused with 412, never applied blindly).
 */
export function ifMatchTags(field: string): '*' | string[] {
  const list = parseList(field);
  if (list === '*') return '*';
  return (list ?? []).filter((tag) => !tag.weak).map((tag) => tag.opaque);
}

/**
 * True when If-None-Match names the current representation (weak comparison), i.e. a GET is
 * answered 304. An invalid field is ignored, as if absent.
 */
export function noneMatchHits(field: string, currentEtag: string): boolean {
  const list = parseList(field);
  if (list === '*') return true;
  const current = parseList(currentEtag);
  if (!list || !Array.isArray(current) || current.length !== 1) return false;
  return list.some((tag) => tag.opaque === current[0]?.opaque);
}
