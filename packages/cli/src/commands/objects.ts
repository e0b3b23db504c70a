import type { Command } from 'commander';
import { displayText, getObject, getObjectLinks, listObjects, requireIntegration, type LinkedObjectRow } from '@dirsync/db';
import type { Context } from '../context.ts';
import { UsageError, NotFoundError } from '../errors.ts';
import { keyValues, safeJson, table } from '../format.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

const objectTypes = ['user', 'group', 'contact'] as const;
type ObjectType = (typeof objectTypes)[number];

/** A stored attribute value as one line of text from the directory. */
function shown(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.map(shown).join('; ');
  if (typeof value === 'object') return displayText(JSON.stringify(value));
  return displayText(String(value));
}

function nameOf(attributes: Record<string, unknown>): string {
  const name = attributes['displayName'] ?? attributes['cn'] ?? attributes['uid'];
  return shown(Array.isArray(name) ? name[0] : name);
}

function parseType(value: string | undefined): ObjectType | undefined {
  if (value === undefined) return undefined;
  if (!(objectTypes as readonly string[]).includes(value)) throw new UsageError(`unknown type "${value}": use one of ${objectTypes.join(', ')}`);
  return value as ObjectType;
}

function parseLimit(value: string): number {
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new UsageError('--limit must be a whole number from 1 to 100000');
  return limit;
}

function linkRows(links: readonly LinkedObjectRow[]): unknown[][] {
  return links.map((l) => [l.externalId, l.type, shown(l.dn), shown(l.displayName)]);
}

/** `dirsync objects list|show`: what a sync stored, read straight from the database. */
export function registerObjectCommands(program: Command, withContext: WithContext): void {
  const objects = program.command('objects').description('read the synced users, groups and contacts of an integration');
  objects
    .command('list')
    .description('list synced objects (deleted ones left out), oldest change first')
    .requiredOption('-i, --integration <id>', 'the integration')
    .option('-t, --type <type>', `only this type (${objectTypes.join(', ')})`)
    .option('-n, --limit <n>', 'how many at most', '100')
    .option('--json', 'print JSON: { "objects": [...], "more": true|false }')
    .action((options: { integration: string; type?: string; limit: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const type = parseType(options.type);
        const limit = parseLimit(options.limit);
        const integration = await requireIntegration(ctx.db(), options.integration);
        const page = await listObjects(ctx.db(), integration.id, type, { limit, includeDeleted: false });
        const more = page.nextCursor !== null;
        if (options.json) {
          const items = page.items.map((o) => ({ externalId: o.externalId, type: o.type, dn: o.dn, attributes: o.attributes, createdAt: o.createdAt, updatedAt: o.updatedAt }));
          console.log(safeJson({ objects: items, more }));
          return;
        }
        if (page.items.length === 0) {
          console.log(`no synced ${type ?? 'object'}s in integration ${integration.id}`);
          return;
        }
        console.log(table(['external id', 'type', 'name', 'dn', 'updated'], page.items.map((o) => [o.externalId, o.type, nameOf(o.attributes), shown(o.dn), o.updatedAt])));
        if (more) console.log(`(more than ${limit}: raise --limit to see more)`);
      }),
    );
  objects
    .command('show <external-id>')
    .description('show one synced object: its attributes, DN, the groups it belongs to and, for a group, its members')
    .requiredOption('-i, --integration <id>', 'the integration')
    .option('--json', 'print JSON: the object with "memberOf", "members" and "unresolvedMembers"')
    .action((externalId: string, options: { integration: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const integration = await requireIntegration(ctx.db(), options.integration);
        const object = await getObject(ctx.db(), integration.id, externalId);
        if (!object) throw new NotFoundError(`no synced object ${displayText(externalId, 100)} in integration ${integration.id}`);
        const links = await getObjectLinks(ctx.db(), integration.id, object.externalId);
        if (options.json) {
          console.log(safeJson({ ...object, ...links }));
          return;
        }
        const header = keyValues([
          ['external id', object.externalId],
          ['type', object.type],
          ['dn', shown(object.dn)],
          ['status', object.deleted ? `deleted ${object.deletedAt ?? ''}`.trim() : 'live'],
          ['created', object.createdAt],
          ['updated', object.updatedAt],
        ]);
        const names = Object.keys(object.attributes).sort();
        const attributes = names.length === 0 ? '(none)' : keyValues(names.map((name) => [displayText(name, 80), shown(object.attributes[name])]));
        const sections = [header, '', 'attributes:', attributes, '', `member of (${links.memberOf.length}):`];
        if (links.memberOf.length > 0) sections.push(table(['external id', 'type', 'dn', 'name'], linkRows(links.memberOf)));
        if (object.type === 'group') {
          sections.push('', `members (${links.members.length}):`);
          if (links.members.length > 0) sections.push(table(['external id', 'type', 'dn', 'name'], linkRows(links.members)));
          if (links.unresolvedMembers.length > 0) {
            sections.push('', `member DNs matching no synced object (${links.unresolvedMembers.length}):`, ...links.unresolvedMembers.map((dn) => `  ${shown(dn)}`));
          }
        }
        console.log(sections.join('\n'));
      }),
    );
}
