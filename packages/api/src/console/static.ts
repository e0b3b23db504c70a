import { stat } from 'node:fs/promises';
import { isAbsolute, join, normalize, resolve, sep } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sendConsolePage } from './pages.ts';

/**
 * Policy of the console's pages: everything from this origin, nothing inline, nothing framed.
 * The SPA's bundle has no inline script or style, and fetches only this origin's API.
 */
export const consoleContentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every console answer (pages, assets, sign-in routes). */
export function setConsoleSecurityHeaders(reply: FastifyReply): void {
  void reply.header('x-content-type-options', 'nosniff');
  // A one-time link's token is in its URL: no page may hand it on as a referrer.
  void reply.header('referrer-policy', 'no-referrer');
  void reply.header('x-frame-options', 'DENY');
}

/**
 * The file a request path names under `root`, or undefined when it is not a plain relative path
 * that stays inside `root` (`..`, backslashes, NUL, absolute paths, dot files).
 */
export function assetPathUnder(root: string, requested: string): string | undefined {
  if (requested === '' || requested.includes('\u0000') || requested.includes('\\') || isAbsolute(requested)) return undefined;
  const segments = requested.split('/');
  if (segments.some((segment) => segment === '' || segment === '.' || segment === '..' || segment.startsWith('.'))) return undefined;
  const base = resolve(root);
  const full = resolve(base, normalize(requested));
  return full.startsWith(base + sep) ? full : undefined;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * Serves the console's built SPA under `/console`: `/console/assets/*` from `assetsDir/assets`
 * (hashed names, cached for a year), files at the top of `assetsDir` by name, and index.html
 * for every other path (history routing), with the console's CSP.
 */
export async function registerConsoleStatic(app: FastifyInstance, assetsDir: string): Promise<void> {
  const root = resolve(assetsDir);
  await app.register(async (scope) => {
    // `serve: false`: only reply.sendFile, after the paths below were checked.
    await scope.register(fastifyStatic, { root, serve: false, index: false, dotfiles: 'deny', wildcard: false });
    scope.addHook('onSend', async (_request, reply, payload) => {
      setConsoleSecurityHeaders(reply);
      return payload;
    });

    async function sendIndex(reply: FastifyReply): Promise<FastifyReply> {
      if (!(await isFile(join(root, 'index.html')))) {
        return sendConsolePage(reply, 503, 'Console not built', ['The console\'s files are missing on this server. Build them with "pnpm --filter @dirsync/console build", then reload.']);
      }
      return reply.header('content-security-policy', consoleContentSecurityPolicy).header('cache-control', 'no-cache').sendFile('index.html', root, { cacheControl: false });
    }

    scope.get('/console', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/console/', 302));
    scope.get('/console/assets/*', { schema: { hide: true } }, async (request: FastifyRequest, reply) => {
      const requested = (request.params as { '*'?: string })['*'] ?? '';
      const path = assetPathUnder(join(root, 'assets'), requested);
      if (path === undefined || !(await isFile(path))) {
        return reply.code(404).header('cache-control', 'no-store').type('text/plain; charset=utf-8').send('not found');
      }
      // Vite names each asset by its content's hash: a name never changes content.
      void reply.header('content-security-policy', consoleContentSecurityPolicy).header('cache-control', 'public, max-age=31536000, immutable');
      return reply.sendFile(path.slice(root.length + 1), root, { cacheControl: false });
    });
    scope.get('/console/*', { schema: { hide: true } }, async (request: FastifyRequest, reply) => {
      const requested = (request.params as { '*'?: string })['*'] ?? '';
      // A top-level file of the build (favicon, manifest) by its own name; any deeper path is a page.
      if (/^[\w-]+(\.[\w-]+)+$/.test(requested) && requested !== 'index.html') {
        const path = assetPathUnder(root, requested);
        if (path !== undefined && (await isFile(path))) {
          return reply.header('content-security-policy', consoleContentSecurityPolicy).sendFile(requested, root, { cacheControl: false });
        }
      }
      return sendIndex(reply);
    });
  });
}
