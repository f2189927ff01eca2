/**
 * A token that cannot be accepted. The reason is for logs and metrics only: RFC 6750 lets the
 * client learn no more than `invalid_token`.
 */
export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError';
}

/** The identity provider's keys could not be obtained, so a token that needs them cannot be checked. */
export class KeysUnavailableError extends Error {
  override name = 'KeysUnavailableError';
}
