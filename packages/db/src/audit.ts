import { and, desc, eq, type SQL } from 'drizzle-orm';
import type { Db } from './client.ts';
import { isUuid } from './ids.ts';
import { auditEvents } from './schema.ts';

/** An audit event, as stored. */
export type AuditEvent = typeof auditEvents.$inferSelect;

/** Input of {@link recordAudit}. */
export interface NewAuditEvent {
  accountId?: string;
  integrationId?: string;
  /** Who acted: a user name, `scheduler`, `worker:<id>`, `api:<client>`. */
  actor: string;
  /** What happened, dotted: `integration.created`, `secret.updated`, `run.approved`. */
  action: string;
  /** Context for administrators. Must not contain secrets; keys that name one are redacted anyway. */
  details?: Record<string, unknown>;
}

/** Filter of {@link listAudit}. */
export interface AuditFilter {
  accountId?: string;
  integrationId?: string;
  /** Newest first; default 100. */
  limit?: number;
}

/** Placeholder stored instead of a value whose key names a secret. */
export const redacted = '[redacted]';

const secretKeyPattern = /pass(word|wd|phrase)?$|secret|token|private.?key|credential|api.?key|^pwd$/i;

/**
 * Replaces values under secret-looking keys, at any depth. A second line of defence: callers must
 * not pass secrets, but a settings object copied whole into the details must not leak one.
 */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (depth > 20 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item, depth + 1));
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    copy[key] = secretKeyPattern.test(key) && item !== null && item !== undefined ? redacted : redactSecrets(item, depth + 1);
  }
  return copy;
}

/** Appends an audit event (details redacted, see {@link redactSecrets}). */
export async function recordAudit(db: Db, event: NewAuditEvent): Promise<AuditEvent> {
  const [row] = await db
    .insert(auditEvents)
    .values({
      accountId: event.accountId ?? null,
      integrationId: event.integrationId ?? null,
      actor: event.actor,
      action: event.action,
      details: redactSecrets(event.details ?? {}) as Record<string, unknown>,
    })
    .returning();
  if (!row) throw new Error('insert returned no row');
  return row;
}

/** Audit events, newest first. */
export async function listAudit(db: Db, filter: AuditFilter = {}): Promise<AuditEvent[]> {
  if (filter.accountId !== undefined && !isUuid(filter.accountId)) return [];
  if (filter.integrationId !== undefined && !isUuid(filter.integrationId)) return [];
  const conditions: SQL[] = [];
  if (filter.accountId !== undefined) conditions.push(eq(auditEvents.accountId, filter.accountId));
  if (filter.integrationId !== undefined) conditions.push(eq(auditEvents.integrationId, filter.integrationId));
  return db
    .select()
    .from(auditEvents)
    .where(and(...conditions))
    .orderBy(desc(auditEvents.id))
    .limit(Math.max(1, Math.min(filter.limit ?? 100, 1000)));
}
