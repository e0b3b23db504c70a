import type { z } from 'zod';

/** One readable line per problem, prefixed with where it is (`users.baseDns[0]: …`). */
export function formatSettingsIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path
      .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
      .join('');
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') message = `unknown setting ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    if (issue.code === 'invalid_type' && issue.input === undefined) message = 'is required';
    return path ? `${path}: ${message}` : message;
  });
}
