import { auditPageSchema } from '@dirsync/contracts';
import { close, connect, createAccount, type Db, recordAudit } from '@dirsync/db';
import { type CliEnvironment, createCliEnvironment } from './support/run-cli.ts';

// An account's administrator chooses the text its audit events carry (an API key's name is the
// actor, names and URLs go into the details). The operator reading that account's log with
// `dirsync audit` must not have their terminal driven by it.

const timeoutMs = 120_000;
let cli: CliEnvironment;
let db: Db;

beforeAll(async () => {
  cli = await createCliEnvironment('cliauditattack');
  db = connect(cli.database.url, { max: 1 });
}, timeoutMs);

afterAll(async () => {
  await close(db);
  await cli?.cleanup();
}, timeoutMs);

// ESC (clear screen, set the window title), C1 CSI, a bidi override.
const hostileActor = 'api-key:\u001b]0;pwned\u0007\u001b[2Jops (00000000-0000-4000-8000-000000000000)';
const hostileName = 'crm\u009b31m\u202etxt.exe';
const terminalControls = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

test('the table and --json of dirsync audit carry no terminal controls from an account’s text; --json keeps the values exact', async () => {
  const account = await createAccount(db, { name: 'hostile-audit' });
  await recordAudit(db, { accountId: account.id, actor: hostileActor, action: 'integration.created', details: { name: hostileName } });

  const table = await cli.run(['audit', '--account', 'hostile-audit']);
  expect(table.code).toBe(0);
  expect(table.stdout).toContain('integration.created');
  expect(table.stdout).toContain('pwned');
  expect(table.stdout).not.toMatch(terminalControls);

  const json = await cli.run(['audit', '--account', 'hostile-audit', '--json']);
  expect(json.code).toBe(0);
  expect(json.stdout).not.toMatch(terminalControls);
  const page = auditPageSchema.parse(JSON.parse(json.stdout));
  const event = page.items.find((e) => e.action === 'integration.created');
  expect(event?.actor).toBe(hostileActor);
  expect(event?.details).toEqual({ name: hostileName });
}, timeoutMs);
