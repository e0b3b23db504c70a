const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Whether `value` can be compared with a uuid column. Ids typed by people (CLI, API) are checked
 * first so that a malformed one reads as "not found" instead of a PostgreSQL syntax error.
 */
export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}
