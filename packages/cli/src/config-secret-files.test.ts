import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigurationError, loadConfig, secretSettings } from './config.ts';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dirsync-secret-files-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function secretFile(name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content, { mode: 0o600 });
  return path;
}

function problemsOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    return (error as Error).message;
  }
  throw new Error('loadConfig accepted the environment');
}

describe('<NAME>_FILE for secret settings', () => {
  test('every secret setting reads its value from the file, trailing line breaks trimmed', async () => {
    const key = Buffer.alloc(32, 7).toString('base64');
    const env = {
      DATABASE_URL_FILE: await secretFile('database-url', 'postgres://dirsync:s3cret@db.internal:5432/dirsync\n'),
      REDIS_URL_FILE: await secretFile('redis-url', 'rediss://default:pw@redis.internal:6380\r\n'),
      DIRSYNC_SECRET_KEY_FILE: await secretFile('secret-key', `${key}\n\n`),
      DIRSYNC_SECRET_KEYS_PREVIOUS_FILE: await secretFile('previous-keys', 'old-a, old-b'),
      DIRSYNC_OIDC_ISSUER: 'https://login.example.com',
      DIRSYNC_OIDC_CLIENT_ID: 'console',
      DIRSYNC_OIDC_CLIENT_SECRET_FILE: await secretFile('oidc-secret', 'client secret with spaces \n'),
      DIRSYNC_INTEGRATION_SECRET_FILE: await secretFile('integration-secret', 'p@ss\nword\n'),
      DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS_FILE: await secretFile('otlp-headers', 'authorization=Bearer%20collector-token\n'),
    };
    const config = loadConfig(env);
    expect(config.DATABASE_URL).toBe('postgres://dirsync:s3cret@db.internal:5432/dirsync');
    expect(config.REDIS_URL).toBe('rediss://default:pw@redis.internal:6380');
    expect(config.DIRSYNC_SECRET_KEY).toBe(key);
    expect(config.DIRSYNC_SECRET_KEYS_PREVIOUS).toEqual(['old-a', 'old-b']);
    // Only trailing line breaks go: inner ones and trailing spaces are part of the secret.
    expect(config.DIRSYNC_OIDC_CLIENT_SECRET).toBe('client secret with spaces ');
    expect(config.DIRSYNC_INTEGRATION_SECRET).toBe('p@ss\nword');
    expect(config.DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS).toEqual({ authorization: 'Bearer collector-token' });
  });

  test('the value read from a file is checked like the variable itself', async () => {
    const message = problemsOf({ DATABASE_URL_FILE: await secretFile('bad-database-url', 'mysql://root:hunter2@db/x\n') });
    expect(message).toContain('DATABASE_URL must be a postgres:// URL');
    expect(message).not.toContain('hunter2');
  });

  test('both the variable and its _FILE set is an error naming both, whatever the values', async () => {
    const message = problemsOf({
      DIRSYNC_SECRET_KEY: 'inline-key-value',
      DIRSYNC_SECRET_KEY_FILE: await secretFile('key-both', 'file-key-value'),
      REDIS_URL: 'nope',
    });
    expect(message).toContain('DIRSYNC_SECRET_KEY and DIRSYNC_SECRET_KEY_FILE are both set: set one of them');
    // Reported with the other problems, not instead of them.
    expect(message).toContain('REDIS_URL');
    expect(message).not.toContain('inline-key-value');
    expect(message).not.toContain('file-key-value');
  });

  test('a missing, unreadable or oversized file is an error naming the variable and the path, never the content', async () => {
    const missing = join(dir, 'does-not-exist');
    expect(problemsOf({ DATABASE_URL_FILE: missing })).toContain(`DATABASE_URL_FILE: cannot read ${missing} (ENOENT)`);

    expect(problemsOf({ DIRSYNC_OIDC_CLIENT_SECRET_FILE: dir, DIRSYNC_OIDC_ISSUER: 'https://login.example.com', DIRSYNC_OIDC_CLIENT_ID: 'c' })).toContain(
      `DIRSYNC_OIDC_CLIENT_SECRET_FILE: ${dir} is not a file`,
    );

    const big = await secretFile('too-big', `${'x'.repeat(70 * 1024)}TAIL-OF-SECRET`);
    const bigMessage = problemsOf({ DIRSYNC_INTEGRATION_SECRET_FILE: big });
    expect(bigMessage).toContain(`DIRSYNC_INTEGRATION_SECRET_FILE: ${big} is larger than 65536 bytes`);
    expect(bigMessage).not.toContain('TAIL-OF-SECRET');

    // Permission bits mean nothing to root, which may run the tests in a container.
    if (process.getuid?.() !== 0) {
      const locked = await secretFile('locked', 'locked-secret');
      await chmod(locked, 0o000);
      const lockedMessage = problemsOf({ DIRSYNC_SECRET_KEY_FILE: locked });
      expect(lockedMessage).toContain(`DIRSYNC_SECRET_KEY_FILE: cannot read ${locked} (EACCES)`);
      expect(lockedMessage).not.toContain('locked-secret');
    }
  });

  test('a blank _FILE counts as unset, and settings that are not secrets have no _FILE', async () => {
    expect(loadConfig({ DATABASE_URL_FILE: '  ', DATABASE_URL: 'postgres://db/x' }).DATABASE_URL).toBe('postgres://db/x');
    const path = await secretFile('port', '9999');
    expect(loadConfig({ PORT_FILE: path }).PORT).toBe(8080);
    expect(secretSettings).toEqual(expect.arrayContaining(['DATABASE_URL', 'REDIS_URL', 'DIRSYNC_SECRET_KEY', 'DIRSYNC_OIDC_CLIENT_SECRET']));
  });
});

describe('the README', () => {
  test('says which settings accept _FILE', async () => {
    const { readFile } = await import('node:fs/promises');
    const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
    for (const name of secretSettings) {
      expect(readme).toMatch(new RegExp(`^\\| \`${name}\` \\|[^\\n]*\`${name}_FILE\``, 'm'));
    }
  });
});
