/** The authenticated caller of a request, on `ctx.state.principal`; undefined when authentication is off. */
export interface Principal {
  /** The OAuth client (`client_id`, else `sub`): the unit of rate limiting and of logging. */
  clientId: string;
  /** The end user or service the token was issued for, when the token names one. */
  subject?: string;
  scopes: ReadonlySet<string>;
}

/** What authentication leaves on ctx.state for the middleware after it. */
export interface AuthState {
  principal?: Principal;
}
