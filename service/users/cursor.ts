/**
 * Opaque page cursors. Clients must not build them, so the format (a versioned id, base64url) can
 * change without breaking anyone; a cursor that does not decode is a 400, not a 500.
 */
const PREFIX = 'v1:';

export function encodeCursor(lastId: number): string {
  return Buffer.from(PREFIX + String(lastId)).toString('base64url');
}

export function decodeCursor(cursor: string): number | undefined {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith(PREFIX)) return undefined;
  const digits = text.slice(PREFIX.length);
  if (!/^[1-9]\d{0,9}$/.test(digits)) return undefined;
  const id = Number(digits);
  return id <= 2_147_483_647 ? id : undefined;
}
