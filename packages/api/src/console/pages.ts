import type { FastifyReply } from 'fastify';

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Answers a browser route with a small page in words (sign-in failures): escaped, no script, and
 * a link back to the console's sign-in.
 */
export function sendConsolePage(reply: FastifyReply, status: number, title: string, lines: readonly string[]): FastifyReply {
  const body = lines.map((line) => `<p>${escapeHtml(line)}</p>`).join('\n');
  const html =
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeHtml(title)} – dirsync</title></head>\n<body><main><h1>${escapeHtml(title)}</h1>\n${body}\n` +
    `<p><a href="/console/">Back to the dirsync console</a></p></main></body></html>\n`;
  return reply.code(status).header('content-security-policy', "default-src 'none'; frame-ancestors 'none'").header('cache-control', 'no-store').type('text/html; charset=utf-8').send(html);
}
