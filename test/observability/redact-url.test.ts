import { expect } from 'chai';
import { redactUrl } from '../../service/observability/logger.js';

describe('redactUrl', () => {
  for (const [url, secret] of [
    ['postgres://u:s3cret@h/db', 's3cret'],
    ['postgres://u@h/db?password=s3cret', 's3cret'],
    ['postgres://u@h/db?sslpassword=s3cret&sslmode=verify-full', 's3cret'],
    ['postgres://u@h/db?sslkey=/secrets/client.key', '/secrets/client.key'],
    ['postgres://u@h/db?sslkey=%2Fsecrets%2Fclient.key', 'client.key'],
    ['rediss://h:6380/0?token=abc123def', 'abc123def'],
    ['postgres://u@h/db?PASSWORD=s3cret', 's3cret'],
    ['postgres://u@h/db?password=one&password=two', 'two'],
  ] as const) {
    it(`hides the credential in ${url.replace(secret, '…')}`, () => {
      const redacted = redactUrl(url);
      expect(redacted).not.to.include(secret);
      expect(redacted).to.include('redacted');
    });
  }

  it('keeps what operators need: scheme, host, database and harmless options', () => {
    expect(redactUrl('postgres://u:p@db.internal:5432/users?sslmode=verify-full')).to.equal('postgres://u:redacted@db.internal:5432/users?sslmode=verify-full');
  });
});
