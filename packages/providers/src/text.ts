// Text a customer's server chose (an LDAP diagnostic message, a notice of disconnection, a
// vendor name) travels into error messages and Test Connection details, then through Redis and
// the API to terminals and pages. The db package keeps the same rule for text it stores
// (`displayText`); providers may import no other package, hence this copy of the rule.

/** Longest text kept from one server-supplied string. */
export const serverTextLimit = 300;

// C0 and C1 controls (a terminal would obey escape sequences), and the bidirectional overrides
// and isolates that make text read differently from what it holds.
const unsafeCharacters = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+/g;

/**
 * A server-supplied string made safe to show anywhere: no control or bidirectional-override
 * characters, whitespace collapsed, at most `limit` characters (cut with an ellipsis). Applied
 * where the text is taken from the wire, so nothing downstream holds it raw or whole.
 */
export function serverText(value: string, limit: number = serverTextLimit): string {
  // Only a prefix can survive the cap: a 60 MB diagnostic is not scanned whole. Four code units
  // a character leaves room for surrogate pairs and for the runs of controls that collapse.
  const head = value.length > limit * 4 ? value.slice(0, limit * 4) : value;
  const clean = head.replace(unsafeCharacters, ' ').replace(/\s+/g, ' ').trim();
  const chars = Array.from(clean);
  const cut = head.length < value.length || chars.length > limit;
  return cut ? `${chars.slice(0, Math.max(0, limit - 1)).join('')}…` : clean;
}
