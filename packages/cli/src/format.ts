/** Renders rows as a plain-text table with a header line, columns padded to their widest cell. */
export function table(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = rows.map((row) => headers.map((_, i) => cell(row[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]) =>
    values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

// What a terminal would obey or that reads differently from what it holds (C0/C1 controls, bidi
// overrides and isolates): names and messages in a table come from accounts and customers'
// directories, so they are shown escaped (`\u001b`), never passed to the operator's terminal.
const unsafeInCell = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]/g;
const unsafeInLines = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]/g;

function cell(value: unknown, unsafe: RegExp = unsafeInCell): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return value.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text.replace(unsafe, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Renders a record as aligned `key: value` lines. */
export function keyValues(entries: readonly (readonly [string, unknown])[]): string {
  const width = Math.max(...entries.map(([key]) => key.length));
  // A value may span lines (a certificate, a message): line feeds stay, every other control is escaped.
  return entries.map(([key, value]) => `${`${key}:`.padEnd(width + 1)} ${cell(value, unsafeInLines)}`).join('\n');
}

/** Human duration: 850ms, 12.3s, 4m05s. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;
}

/** A one-line progress bar for a terminal (`[=====     ] 12,345 objects`). */
export function progressBar(done: number, total: number | undefined, width = 30): string {
  if (!total || total <= 0) return `${done.toLocaleString('en-US')} objects`;
  const ratio = Math.min(1, done / total);
  const filled = Math.round(ratio * width);
  return `[${'='.repeat(filled)}${' '.repeat(width - filled)}] ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')}`;
}

// Characters a terminal would obey or that make text read differently (C0/C1 controls, bidi
// overrides and isolates). JSON.stringify escapes only C0: the rest are escaped here too, so
// `--json` keeps every value exact yet can be printed to a terminal as is.
const unsafeInJson = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]/g;

/** Stable JSON of command output: two-space indented, terminal-safe. */
export function safeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(unsafeInJson, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Anything with a zod-like `parse`: the wire schema a `--json` output is held to. */
interface WireSchema<T> {
  parse(value: unknown): T;
}

/**
 * Prints `value` as `--json` output in the shape of `schema` (the API's wire schema where the
 * command mirrors an API resource): dates become RFC 3339 strings as over HTTP, fields the
 * schema does not name are dropped, and a value that does not fit fails here rather than
 * reaching a script in another shape.
 */
export function printJson<T>(schema: WireSchema<T>, value: unknown): void {
  console.log(jsonOutput(schema, value));
}

/** The text {@link printJson} prints. */
export function jsonOutput<T>(schema: WireSchema<T>, value: unknown): string {
  return safeJson(schema.parse(JSON.parse(JSON.stringify(value))));
}
