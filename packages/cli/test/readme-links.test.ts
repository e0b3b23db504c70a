import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The README's links resolve: every `](#anchor)` names a heading of the README as GitHub renders
// its anchors, and every relative link names a file or folder of the repository (and, for a
// Markdown file, one of its headings when the link carries an anchor). Sections move; links that
// pointed at them must move with them.

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Lines outside fenced code blocks (``` or ~~~), which Markdown does not parse for links or headings. */
function proseLines(markdown: string): string[] {
  const lines: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (marker !== undefined && (fence === undefined || (marker[0] === fence[0] && marker.length >= fence.length))) {
      fence = fence === undefined ? marker : undefined;
      continue;
    }
    if (fence === undefined) lines.push(line);
  }
  return lines;
}

/** A heading's anchor as GitHub makes it: the rendered text lower-cased, punctuation dropped, spaces as hyphens. */
function githubSlug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`/g, '')
    .replace(/\*/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor of a Markdown document's headings; a repeated heading gets `-1`, `-2`, … as on GitHub. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const slug = githubSlug(heading);
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/** Inline link targets of the prose (images included), outside code spans. */
function linkTargets(markdown: string): string[] {
  const targets: string[] = [];
  for (const line of proseLines(markdown)) {
    const text = line.replace(/(`+)[\s\S]*?\1/g, '');
    for (const match of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) targets.push(match[1] as string);
  }
  return targets;
}

/** How the checker reads files and tells whether a path exists (the disk, or a test's own files). */
interface FileAccess {
  readonly read: (path: string) => string;
  readonly exists: (path: string) => boolean;
}

const disk: FileAccess = { read: (path) => readFileSync(path, 'utf8'), exists: existsSync };

/**
 * The links of `file` (a Markdown file under `repository`) that do not resolve, with why. Links to
 * other sites are not followed; a relative link leaving the repository (the design document of
 * the shared folder beside it) is not checked either.
 */
function brokenLinks(file: string, repository: string, files: FileAccess = disk): string[] {
  const { read, exists } = files;
  const markdown = read(file);
  const own = anchorsOf(markdown);
  const broken: string[] = [];
  for (const target of linkTargets(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
    const [path = '', anchor] = target.split('#', 2);
    if (path === '') {
      if (!own.has(anchor ?? '')) broken.push(`${target}: no heading has this anchor`);
      continue;
    }
    const resolved = resolve(dirname(file), decodeURI(path));
    if (relative(repository, resolved).startsWith('..')) continue;
    if (!exists(resolved)) {
      broken.push(`${target}: no such file or folder`);
      continue;
    }
    if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(read(resolved)).has(anchor)) {
      broken.push(`${target}: ${relative(repository, resolved)} has no heading with this anchor`);
    }
  }
  return broken;
}

test('anchors follow GitHub: code, punctuation and case dropped, repeats numbered', () => {
  expect(githubSlug('Scripting: `--json`, exit codes, completion, version')).toBe('scripting---json-exit-codes-completion-version');
  expect(githubSlug("Fairness and protecting customers' directory servers")).toBe('fairness-and-protecting-customers-directory-servers');
  expect(githubSlug('Secrets in files: `<NAME>_FILE`')).toBe('secrets-in-files-name_file');
  expect(githubSlug('`entra_id`')).toBe('entra_id');
  expect([...anchorsOf('# A\n## Notes\n```sh\n# not a heading\n```\n### Notes\n')]).toEqual(['a', 'notes', 'notes-1']);
});

test('a link to a missing heading, file or heading of another file is reported; code is not read for links', () => {
  const files: Record<string, string> = {
    '/repo/README.md': '# Top\n\n## Use it\n\nSee [use](#use-it), [gone](#gone), [guide](docs/guide.md#setup), [other](docs/guide.md#nope), [file](missing.txt), [site](https://example.com/#x), [shared](../shared/DESIGN.md).\n\n```md\n[in code](#nowhere)\n```\n\n`[in a span](#nowhere)`\n',
    '/repo/docs/guide.md': '# Guide\n\n## Setup\n',
  };
  const read = (path: string) => {
    const text = files[path];
    if (text === undefined) throw new Error(`no file ${path}`);
    return text;
  };
  const broken = brokenLinks('/repo/README.md', '/repo', { read, exists: (path) => path in files || path === '/repo/docs' });
  expect(broken).toEqual(['#gone: no heading has this anchor', 'docs/guide.md#nope: docs/guide.md has no heading with this anchor', 'missing.txt: no such file or folder']);
});

test("every link of the README resolves to one of its headings or to a file of the repository", () => {
  const readme = join(root, 'README.md');
  const targets = linkTargets(readFileSync(readme, 'utf8'));
  // A parser that found nothing would pass vacuously.
  expect(targets.filter((target) => target.startsWith('#')).length).toBeGreaterThan(20);
  expect(targets.filter((target) => !target.startsWith('#') && !/^[a-z]+:/i.test(target)).length).toBeGreaterThan(10);
  expect(brokenLinks(readme, root)).toEqual([]);
});
