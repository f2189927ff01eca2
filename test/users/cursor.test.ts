import { expect } from 'chai';
import fc from 'fast-check';
import { decodeCursor, encodeCursor } from '../../service/users/cursor.js';

describe('page cursors', () => {
  it('decode to the id they were made from', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 2_147_483_647 }), (id) => decodeCursor(encodeCursor(id)) === id));
  });

  it('are opaque: a bare id is not a cursor', () => {
    expect(decodeCursor('42')).to.equal(undefined);
  });

  it('reject ids outside the 32-bit range', () => {
    expect(decodeCursor(Buffer.from('v1:2147483648').toString('base64url'))).to.equal(undefined);
  });

  it('never throw on arbitrary text', () => {
    fc.assert(fc.property(fc.string(), (text) => {
      const id = decodeCursor(text);
      return id === undefined || (Number.isInteger(id) && id >= 1);
    }));
  });
});
