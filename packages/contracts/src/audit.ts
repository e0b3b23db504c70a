import { z } from 'zod';
import { pageOf, pageQuery, requestDate } from './api.ts';

/**
 * The audit log (`GET /v1/audit`, `dirsync audit`): who changed what in an account, newest
 * first. Details never hold secrets (values under secret-looking keys are stored redacted).
 */

/** Query of `GET /v1/audit`. */
export const auditQuery = pageQuery.extend({
  since: requestDate.optional().describe('only events at or after this time'),
  until: requestDate.optional().describe('only events before this time'),
  actor: z.string().min(1).max(200).optional().describe('only events whose actor contains this text (case-insensitive)'),
  action: z
    .string()
    .regex(/^[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?$/, 'an action such as integration.created, or a prefix such as integration.*')
    .max(200)
    .optional()
    .describe('only events of this action; `integration.*` matches every action under `integration.`'),
  integrationId: z.uuid().optional().describe('only events of this integration'),
});
/** Filter of the audit log, as a client sends it. */
export type AuditQuery = Partial<z.output<typeof auditQuery>>;

/** One audit event. */
export const auditEventSchema = z.object({
  id: z.string().regex(/^\d+$/).describe('increasing with time of recording, as decimal text'),
  occurredAt: z.iso.datetime({ offset: true }).describe('when it was recorded (RFC 3339)'),
  actor: z.string().describe('who acted: `api-key:<name> (<id>)`, `console:<email> (session …)`, `cli`, `worker:<id>`, `scheduler`'),
  action: z.string().describe('what happened, dotted: `integration.created`, `run.approved`, `webhook.secret_rotated`, …'),
  integrationId: z.uuid().nullable().describe('the integration concerned, if any'),
  details: z.record(z.string(), z.unknown()).describe('context of the action; never a secret'),
});
/** One audit event. */
export type AuditEventEntry = z.infer<typeof auditEventSchema>;

/** A page of the audit log. */
export const auditPageSchema = pageOf(auditEventSchema);
/** A page of the audit log. */
export type AuditPage = z.infer<typeof auditPageSchema>;
