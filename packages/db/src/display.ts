// Text that came from outside (a redirect's query string, a directory's or Graph's error) and is
// stored to be shown later, in API answers, pages and the command line.

/** Longest text kept from an outside source (error descriptions) for later display. */
export const displayTextLimit = 300;

// C0 and C1 controls (a terminal would obey escape sequences), and the bidirectional overrides
// and isolates that make text read differently from what it holds.
const unsafeCharacters = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+/g;

/**
 * Text from outside (a query string, a directory's error) made safe to show anywhere later: no
 * control or bidirectional-override characters, whitespace collapsed, at most `limit` characters
 * (cut with an ellipsis). HTML and JSON escaping stay with whoever renders it.
 */
export function displayText(value: string, limit: number = displayTextLimit): string {
  const clean = value.replace(unsafeCharacters, ' ').replace(/\s+/g, ' ').trim();
  const chars = Array.from(clean);
  return chars.length <= limit ? clean : `${chars.slice(0, Math.max(0, limit - 1)).join('')}…`;
}
