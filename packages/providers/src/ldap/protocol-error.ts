// Its own module: the decoder (protocol.ts) throws it, and errors.ts, which maps it, reads the
// decoder's types; errors.ts re-exports it.

/**
 * The server's bytes break the protocol (a length running past its enclosing element, a wrong
 * tag, garbage) or exceed a client-side bound (message size, bytes or entries of one page). The
 * connection that read them is closed; the mapped error is never retried, since a retry would
 * only read, and buffer, the same answer again.
 */
export class LdapProtocolError extends Error {
  override readonly name = 'LdapProtocolError';
  /** `malformed`: not valid LDAP; `limit`: valid so far, but over a bound the client enforces. */
  readonly kind: 'malformed' | 'limit';
  constructor(message: string, kind: 'malformed' | 'limit' = 'malformed') {
    super(message);
    this.kind = kind;
  }
}
