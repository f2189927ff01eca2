/** The authenticated caller of a request; undefined on ctx.state when authentication is off. */
export interface Principal {
  clientId: string;
  subject?: string;
  scopes: ReadonlySet<string>;
}
