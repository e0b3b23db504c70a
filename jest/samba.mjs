// The run's shared Samba AD domain controller. Provisioning and loading the seed directory cost
// several seconds of both cores, so the DC is started only when the run may contain tests that
// use it (Active Directory tests: packages/*/test/ad-*.test.ts). Test files that run without it
// start a DC of their own (see sharedSamba() in packages/testkit/src/samba.ts).
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { sharedSambaEnv, startSharedSamba } from '../packages/testkit/src/samba.ts';

const root = resolve(import.meta.dirname, '..');
const sambaTestFile = /^ad-.*\.test\.ts$/;

function candidateFiles() {
  const files = [];
  for (const pkg of readdirSync(join(root, 'packages'))) {
    let names = [];
    try {
      names = readdirSync(join(root, 'packages', pkg, 'test'));
    } catch {
      continue;
    }
    for (const name of names) if (sambaTestFile.test(name)) files.push({ project: pkg, path: join(root, 'packages', pkg, 'test', name) });
  }
  return files;
}

/** True when the run's project selection and path patterns leave some Samba test in. */
export function runNeedsSamba(globalConfig) {
  const projects = globalConfig?.selectProjects ?? [];
  const raw = globalConfig?.testPathPatterns;
  const patterns = (Array.isArray(raw) ? raw : (raw?.patterns ?? [])).map((p) => new RegExp(p, 'i'));
  return candidateFiles().some(
    (file) =>
      (projects.length === 0 || projects.includes(file.project)) &&
      (patterns.length === 0 || patterns.some((pattern) => pattern.test(file.path))),
  );
}

const key = Symbol.for('dirsync.test.samba');

/** Starts the shared DC when needed and describes it to test workers through the environment. */
export async function startRunSamba(globalConfig) {
  // A DC described by the caller's environment (a long-lived one while developing) is used as is.
  if (process.env[sharedSambaEnv] || !runNeedsSamba(globalConfig)) return;
  const { server, info } = await startSharedSamba();
  globalThis[key] = server;
  process.env[sharedSambaEnv] = JSON.stringify(info);
}

/** Stops the shared DC (its process also dies with this one: see startSamba). */
export async function stopRunSamba() {
  const server = globalThis[key];
  globalThis[key] = undefined;
  await server?.stop();
}
