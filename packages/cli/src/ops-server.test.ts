import net from 'node:net';
import { pino } from 'pino';
import { serveOpsPort, startOpsServer } from './ops-server.ts';

// The operations port of every process, against a real HTTP listener.

const logger = pino({ level: 'silent' });
const registry = { contentType: 'text/plain; version=0.0.4; charset=utf-8', metrics: async () => 'dirsync_runs{status="queued"} 3\n' };

test('answers health, readiness (503 when not ready) and metrics; nothing else', async () => {
  let ready = true;
  const ops = await startOpsServer({ port: 0, host: '127.0.0.1', registry, readiness: async () => ({ ready, checks: { database: { ok: ready } } }), logger });
  try {
    const base = `http://127.0.0.1:${ops.port}`;
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const scraped = await fetch(`${base}/metrics?ignored=1`);
    expect(scraped.headers.get('content-type')).toBe(registry.contentType);
    expect(scraped.headers.get('cache-control')).toBe('no-store');
    expect(await scraped.text()).toBe('dirsync_runs{status="queued"} 3\n');
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
    ready = false;
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ ready: false, checks: { database: { ok: false } } });
  } finally {
    await ops.close();
  }
});

test('a failing readiness check answers 500 without its message', async () => {
  const ops = await startOpsServer({ port: 0, host: '127.0.0.1', registry, readiness: () => Promise.reject(new Error('secret detail')), logger });
  try {
    const answer = await fetch(`http://127.0.0.1:${ops.port}/readyz`);
    expect(answer.status).toBe(500);
    expect(await answer.text()).not.toContain('secret detail');
  } finally {
    await ops.close();
  }
});

test('a port already taken is logged and the process goes on without it; port 0 in the setting serves none', async () => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const port = (holder.address() as net.AddressInfo).port;
  const lines: string[] = [];
  const recording = pino({ level: 'error' }, { write: (line: string) => void lines.push(line) });
  try {
    expect(await serveOpsPort({ port, host: '127.0.0.1', registry, readiness: async () => ({ ready: true }), logger: recording })).toBeUndefined();
    expect(lines.join('')).toMatch(/EADDRINUSE/);
    expect(await serveOpsPort({ port: 0, registry, readiness: async () => ({ ready: true }), logger })).toBeUndefined();
  } finally {
    await new Promise<void>((resolve) => holder.close(() => resolve()));
  }
});
