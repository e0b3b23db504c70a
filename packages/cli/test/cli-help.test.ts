import { dominoSettingsSchema } from '@dirsync/providers';
import { runCli } from './support/run-cli.ts';

// `integrations add --help` is where an administrator looks for the kind-specific settings.

test('integrations add --help documents every Domino setting and the attributes read', async () => {
  const env: Record<string, string> = {};
  if (process.env['PATH'] !== undefined) env['PATH'] = process.env['PATH'];
  const result = await runCli(env, ['integrations', 'add', '--help']);
  expect(result).toMatchObject({ code: 0, stderr: '' });
  const help = result.stdout.slice(result.stdout.indexOf('Domino (--kind domino)'));
  const defaults = dominoSettingsSchema.parse({ url: 'ldaps://d.example', bindDn: 'O=Acme', users: { baseDns: ['O=Acme'] }, groups: { baseDns: ['O=Acme'] } });
  for (const name of Object.keys(defaults).filter((n) => !['url', 'bindDn', 'tls', 'users', 'groups', 'timeouts', 'limits'].includes(n))) {
    expect(help).toMatch(new RegExp(`^  ${name} `, 'm'));
  }
  expect(help).toContain('limits.maxMessageMiB');
  expect(help).toMatch(/^Attributes read for people: dominoUNID, .*mailFile$/m);
  expect(help).toMatch(/^Attributes read for groups: dominoUNID, .*description and the member attributes$/m);
}, 30_000);
