/** A user as the API shows it. */
export interface User {
  id: number;
  name: string;
  email: string;
  created_at: string;
  updated_at: string;
}

export interface NewUser {
  name: string;
  email: string;
}

/** One identity per mailbox: `Alice@Example.com ` and `alice@example.com` are the same user. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Raised by a repository when the e-mail is already registered. */
export class DuplicateEmailError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('e-mail already registered', options);
    this.name = 'DuplicateEmailError';
  }
}
