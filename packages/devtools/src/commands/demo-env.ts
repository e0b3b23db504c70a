import { fileURLToPath } from 'node:url';
import type { Context } from '@dirsync/cli';

/** Where the demo's processes write their logs (`.tmp/demo-*.log`). */
export const demoLogDir = fileURLToPath(new URL('../../../../.tmp', import.meta.url));

/** Where the demo's own servers listen. */
const demoNetworks = ['127.0.0.0/8', '::1/128'];

/**
 * Environment of the demo's own context and of its scheduler and worker processes: the run's own
 * database and queue prefix, the key, a fast scheduler tick, and no listening ports (the demo's
 * scheduler serves no API and binds nothing, its processes serve no metrics: two demos, or a demo
 * next to a running installation, never collide on a port).
 */
export function demoServiceEnv(ctx: Context, run: { readonly databaseUrl: string; readonly queuePrefix: string }): Record<string, string> {
  return {
    DATABASE_URL: run.databaseUrl,
    REDIS_URL: ctx.config.REDIS_URL,
    DIRSYNC_REDIS_MODE: ctx.config.DIRSYNC_REDIS_MODE,
    DIRSYNC_SYNC_SHARDS: String(ctx.config.DIRSYNC_SYNC_SHARDS),
    DIRSYNC_QUEUE_PREFIX: run.queuePrefix,
    DIRSYNC_SECRET_KEY: ctx.config.DIRSYNC_SECRET_KEY ?? '',
    DIRSYNC_SCHEDULER_TICK: '*/2 * * * * *',
    DIRSYNC_SCHEDULER_API: 'false',
    PORT: '0',
    DIRSYNC_METRICS_PORT: '0',
    // The demo's directories (slapd, Samba, the Entra emulator) listen on loopback: allowed explicitly.
    DIRSYNC_ALLOWED_NETWORKS: [...new Set([...ctx.config.DIRSYNC_ALLOWED_NETWORKS.map((n) => n.text), ...demoNetworks])].join(','),
    LOG_LEVEL: 'info',
  };
}
