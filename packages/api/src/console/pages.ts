import type { FastifyReply } from 'fastify';

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function pageHtml(title: string, body: string): string {
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeHtml(title)} – dirsync</title></head>\n<body><main><h1>${escapeHtml(title)}</h1>\n${body}\n</main></body></html>\n`
  );
}

/**
 * Answers a browser route with a small page in words (sign-in failures): escaped, no script, and
 * a link back to the console's sign-in.
 */
export function sendConsolePage(reply: FastifyReply, status: number, title: string, lines: readonly string[]): FastifyReply {
  const body = `${lines.map((line) => `<p>${escapeHtml(line)}</p>`).join('\n')}\n<p><a href="/console/">Back to the dirsync console</a></p>`;
  return reply
    .code(status)
    .header('content-security-policy', "default-src 'none'; frame-ancestors 'none'")
    .header('cache-control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(pageHtml(title, body));
}

/**
 * Policy of the one-time link's confirmation page: no script, no style, never framed (so no other
 * site can lay its own page over "Continue"), and its form posts only to this origin.
 */
export const linkConfirmationPolicy = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/**
 * The page a one-time link opens: it asks before signing in, and only its form's POST (same
 * origin, the token in a hidden field) uses the link. Never cached, never a referrer.
 */
export function sendLinkConfirmationPage(reply: FastifyReply, input: { action: string; token: string; role: string; accountName: string }): FastifyReply {
  const body = [
    `<p>Sign in to dirsync as ${escapeHtml(input.role)} of ${escapeHtml(input.accountName)}?</p>`,
    '<p>Continue only if you asked for this link: it signs this browser in, once.</p>',
    `<form method="post" action="${escapeHtml(input.action)}">`,
    `<input type="hidden" name="token" value="${escapeHtml(input.token)}">`,
    '<button type="submit">Continue</button>',
    '</form>',
    '<p><a href="/console/">Cancel</a></p>',
  ].join('\n');
  return reply
    .code(200)
    .header('content-security-policy', linkConfirmationPolicy)
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .type('text/html; charset=utf-8')
    .send(pageHtml('Sign in to dirsync', body));
}
