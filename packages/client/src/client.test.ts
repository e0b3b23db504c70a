import { allPages, buildPath, createDirsyncClient, DirsyncApiError } from './client.ts';

test('buildPath keeps only defined parameters and encodes them', () => {
  expect(buildPath('/v1/runs')).toBe('/v1/runs');
  expect(buildPath('/v1/runs', { status: 'failed', cursor: undefined, limit: 5, since: '2024-01-01T00:00:00+02:00' })).toBe(
    '/v1/runs?status=failed&limit=5&since=2024-01-01T00%3A00%3A00%2B02%3A00',
  );
});

test('allPages follows cursors to the end', async () => {
  const pages: Record<string, { items: number[]; nextCursor: string | null }> = {
    start: { items: [1, 2], nextCursor: 'b' },
    b: { items: [3], nextCursor: 'c' },
    c: { items: [], nextCursor: null },
  };
  const seen: number[] = [];
  for await (const item of allPages(async (cursor) => pages[cursor ?? 'start']!)) seen.push(item);
  expect(seen).toEqual([1, 2, 3]);
});

test('an error answer becomes DirsyncApiError carrying the problem', async () => {
  const problem = { type: '/v1/problems/not-found', title: 'Not Found', status: 404, detail: 'integration x not found' };
  const requests: Array<{ url: string; init: RequestInit | undefined }> = [];
  const client = createDirsyncClient({
    baseUrl: 'http://api.invalid/',
    apiKey: 'dsk_key',
    fetch: async (url, init) => {
      requests.push({ url: String(url), init });
      return new Response(JSON.stringify(problem), { status: 404, headers: { 'content-type': 'application/problem+json' } });
    },
  });
  const failure = client.getIntegration('x y');
  await expect(failure).rejects.toBeInstanceOf(DirsyncApiError);
  await expect(failure).rejects.toMatchObject({ status: 404, problem, message: '404 Not Found: integration x not found' });
  expect(requests[0]?.url).toBe('http://api.invalid/v1/integrations/x%20y');
  expect((requests[0]?.init?.headers as Record<string, string>)['authorization']).toBe('Bearer dsk_key');
});
