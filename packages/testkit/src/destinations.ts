import { DestinationPolicy, platformEndpointsOf } from '@dirsync/providers';
import { testPgServerUrl } from './pg.ts';
import { testRedisUrl } from './redis.ts';

/** Networks the test servers (slapd, Samba, the Entra emulator, hostile servers) listen in. */
export const testAllowedNetworks = ['127.0.0.0/8', '::1/128'] as const;

/** `DIRSYNC_ALLOWED_NETWORKS` for processes the tests start (CLI, demo, bench). */
export const testAllowedNetworksSetting = testAllowedNetworks.join(',');

/**
 * The destination policy of tests: loopback allowed, since every test server runs there, and
 * the test Redis and PostgreSQL refused as the platform's own endpoints, as in production.
 */
export const testDestinations = new DestinationPolicy({
  allowedNetworks: testAllowedNetworks,
  platformEndpoints: platformEndpointsOf({ redisUrl: testRedisUrl, databaseUrl: testPgServerUrl }),
});
