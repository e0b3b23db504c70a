import { CURSOR_EXPIRED_PROBLEM } from '@dirsync/contracts';

/**
 * Every problem type the API answers with (the last segment of a problem's `type`,
 * `/v1/problems/<code>`): what it means and what to do. The API serves each at its `type` URI
 * and `dirsync openapi --write docs/api` publishes them all as `docs/api/problems.md`; a test
 * fails when a route answers a type that is not here.
 */
export interface ProblemType {
  readonly title: string;
  /** HTTP statuses it comes with. */
  readonly statuses: readonly number[];
  /** What happened and what to do (Markdown, one paragraph). */
  readonly description: string;
}

/** The catalogue, by code. */
export const problemTypes: Readonly<Record<string, ProblemType>> = {
  'invalid-request': {
    title: 'Invalid request',
    statuses: [400, 413, 415],
    description:
      'The request does not match the operation: a parameter or body field is missing, of the wrong type or out of range, the JSON is malformed, or the request is too large. `errors` lists each problem with where it is (`in`: body, querystring, params) and its `path`. Fix the request; retrying it unchanged fails the same way.',
  },
  'request-too-large': {
    title: 'Request too large',
    statuses: [431],
    description: 'The request line or headers are larger than the server accepts. Send a shorter URL (fewer or shorter query parameters) or fewer headers.',
  },
  'invalid-input': {
    title: 'Invalid input',
    statuses: [422],
    description: 'The request is well-formed but a value cannot be accepted as it is (an unknown scope, a name already in use elsewhere, a value the stored data contradicts). The `detail`, and `errors` where present, say which.',
  },
  'invalid-configuration': {
    title: 'Invalid integration settings',
    statuses: [422],
    description:
      "The integration's `settings` (or attribute mapping) do not validate for its kind. `errors` lists each field with its path, e.g. `settings.users.baseDns[0]`. The JSON Schema of each kind's settings is published beside the OpenAPI document (`docs/api/schemas/<kind>.settings.json`).",
  },
  'invalid-cursor': {
    title: 'Invalid cursor',
    statuses: [400],
    description: 'The `cursor` (or `after`) was not returned by this API for this list: it was edited, truncated or belongs to another list. Start again without it.',
  },
  [CURSOR_EXPIRED_PROBLEM]: {
    title: 'Cursor expired',
    statuses: [410],
    description:
      'The change feed no longer keeps the entries after this cursor. Read the synced lists again, then follow the feed from `head` (an extension member of the problem, taken before the lists are read, so nothing is lost in between).',
  },
  unauthenticated: {
    title: 'Authentication required',
    statuses: [401],
    description: 'No API key was sent, the key is unknown or revoked, or the console session has ended. Send `Authorization: Bearer <key>`, or sign in to the console again.',
  },
  'insufficient-scope': {
    title: 'Insufficient scope',
    statuses: [403],
    description: 'The key (or the console role) lacks the scope this operation needs; `requiredScope` names it (`read`, `sync` or `admin`; `admin` includes the others). Use a key with that scope: `dirsync api-keys create --scopes …`.',
  },
  'account-required': {
    title: 'Account required',
    statuses: [400, 403],
    description:
      'The operation acts on one account, and the caller did not name one: a platform key has no account, and a console session with roles on several accounts must name the account in the `X-Dirsync-Account` header.',
  },
  'account-not-granted': {
    title: 'Account not granted',
    statuses: [403],
    description: 'The console session has no role on the account named by `X-Dirsync-Account`. Ask an administrator of that account for a role.',
  },
  'platform-required': {
    title: 'Platform administrator required',
    statuses: [403],
    description: 'Only a platform administrator (a platform API key with the `admin` scope, or a console platform operator) may do this, e.g. create a connector.',
  },
  'platform-admin-required': {
    title: 'Platform administrator required',
    statuses: [403],
    description: "The queue dashboard shows every account's jobs: open it with a platform key that has the `admin` scope.",
  },
  'origin-not-allowed': {
    title: 'Origin not allowed',
    statuses: [403],
    description: "A change made with a console session must come from the console's own origin (`DIRSYNC_CONSOLE_URL`); the request came from another site.",
  },
  'csrf-token-invalid': {
    title: 'CSRF token missing or wrong',
    statuses: [403],
    description: 'A change made with a console session needs the `X-CSRF-Token` header carrying the `csrfToken` of `GET /console/auth/session`.',
  },
  'not-found': {
    title: 'Not found',
    statuses: [404],
    description: "The resource does not exist, or belongs to another account (both answer the same, so ids of other accounts cannot be probed); or there is no such route.",
  },
  conflict: {
    title: 'Conflict',
    statuses: [409],
    description: 'The change conflicts with what is stored, e.g. a name already used by another resource of the account. Choose another value or change the existing resource.',
  },
  'invalid-state': {
    title: 'Invalid state',
    statuses: [409],
    description: 'The resource is not in a state that allows this operation now (e.g. approving a run that is not blocked). Read it again and act on its current state.',
  },
  'integration-disabled': {
    title: 'Integration disabled',
    statuses: [409],
    description: 'The integration is disabled, so it cannot sync or be tested: enable it first (`POST /v1/integrations/{id}/enable`).',
  },
  'legacy-integration-refused': {
    title: 'Legacy Entra ID integration refused',
    statuses: [422],
    description:
      'Entra ID integrations with their own app registration can no longer be created or have those settings changed: use a connector (`connectorId`), and migrate existing ones with `POST /v1/integrations/{id}/migrate`.',
  },
  'not-legacy-integration': {
    title: 'Not a legacy integration',
    statuses: [409],
    description: 'Only a legacy Entra ID integration (with its own app registration) can be migrated to a connector; this one already uses a connector or is of another kind.',
  },
  'tenant-consent-required': {
    title: 'Tenant consent required',
    statuses: [403, 409],
    description:
      "The account holds no granted admin consent of this Entra ID tenant to the connector. Ask the tenant's administrator to consent through a consent URL (`POST /v1/connectors/{id}/consent-url`), then try again.",
  },
  'invalid-consent-state': {
    title: 'Invalid consent state',
    statuses: [400],
    description: 'The consent callback carried a `state` this installation did not issue, or one that expired or was used already. Start the consent again from a new consent URL.',
  },
  'connection-failed': {
    title: 'Connection test failed',
    statuses: [422],
    description: "The new secret was not stored: Test Connection failed with it, and the old secret stays in use. `checks` in the problem say which step failed (reach, TLS, bind, search).",
  },
  'secrets-unavailable': {
    title: 'Secrets unavailable',
    statuses: [503],
    description: 'This API server has no secret key configured (`DIRSYNC_SECRET_KEY`), so it cannot store or read secrets. Configure the key (the same on every process of the installation).',
  },
  'connectors-unavailable': {
    title: 'Connectors unavailable',
    statuses: [503],
    description: 'This API server cannot generate connector certificates. Create the connector with `dirsync connectors add` instead.',
  },
  'rate-limited': {
    title: 'Rate limited',
    statuses: [429],
    description:
      'The key, console session or client address made more requests in the current window than allowed (`DIRSYNC_API_RATE_LIMIT`, `DIRSYNC_PUBLIC_RATE_LIMIT`). Wait for the time the `detail` and `Retry-After` give.',
  },
  'database-unavailable': {
    title: 'Database unavailable',
    statuses: [503],
    description: 'PostgreSQL cannot be reached right now. Retry after `Retry-After` seconds; `/readyz` reports the dependency while it lasts.',
  },
  'queue-unavailable': {
    title: 'Queue unavailable',
    statuses: [503],
    description: 'Redis (the queue) cannot be reached right now. Retry after `Retry-After` seconds; `/readyz` reports the dependency while it lasts.',
  },
  'worker-timeout': {
    title: 'Worker timeout',
    statuses: [504],
    description: 'No worker answered the request (Test Connection, a new password check) within `DIRSYNC_CONTROL_TIMEOUT_SECONDS`. Check that workers run and are not all busy, then retry.',
  },
  'worker-failed': {
    title: 'Worker failed',
    statuses: [502],
    description: 'The worker that took the request failed to carry it out; the `detail` says why. Retry, and look at the worker logs when it persists.',
  },
  internal: {
    title: 'Internal error',
    statuses: [500],
    description: "The server failed unexpectedly; nothing of the request's data is in the answer. The server logged the error with the request id: report it to the installation's operators.",
  },
};

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
// Inline code only: the descriptions use no other Markdown.
const inline = (text: string) => escape(text).replace(/`([^`]+)`/g, '<code>$1</code>');

/** One problem type's documentation page, as the API serves it at its `type` URI. */
export function problemTypePage(code: string, type: ProblemType): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(type.title)} — dirsync API problem</title></head>
<body><main>
<h1>${escape(type.title)}</h1>
<p><code>${escape(code)}</code> · HTTP ${type.statuses.join(', ')}</p>
<p>${inline(type.description)}</p>
<p><a href="/v1/problems">Every problem type</a> · <a href="/docs">API documentation</a></p>
</main></body></html>
`;
}

/** The index of every problem type. */
export function problemIndexPage(): string {
  const items = Object.entries(problemTypes)
    .map(([code, type]) => `<li><a href="/v1/problems/${escape(code)}"><code>${escape(code)}</code></a>: ${escape(type.title)}</li>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dirsync API problem types</title></head>
<body><main><h1>Problem types</h1>
<p>The <code>type</code> of every error answer (<code>application/problem+json</code>) of the dirsync API.</p>
<ul>
${items}
</ul></main></body></html>
`;
}

/** Every problem type as Markdown, one section (anchor `#<code>`) each: `docs/api/problems.md`. */
export function problemTypesMarkdown(): string {
  const sections = Object.entries(problemTypes)
    .map(([code, type]) => `## ${code}\n\n**${type.title}** · HTTP ${type.statuses.join(', ')}\n\n${type.description}\n`)
    .join('\n');
  return `# Problem types of the dirsync API

Every error answer of the API is \`application/problem+json\` (RFC 9457) whose \`type\` is
\`/v1/problems/<code>\`: the API serves each type's page there, and this file (written by
\`pnpm dirsync openapi --write docs/api\`) has them all, one section per code.

${sections}`;
}
