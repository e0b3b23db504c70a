/**
 * One jest run over every package (CI needs one JSON report); each package is a project so
 * `pnpm --filter <pkg> test` runs only its own files. Servers are started once per run by the
 * global setup and described to test files through a JSON file (see packages/testkit).
 */
const packages = ['contracts', 'db', 'providers', 'jobs', 'worker', 'scheduler', 'api', 'cli', 'testkit', 'client', 'console', 'devtools'];

const swc = {
  jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
  module: { type: 'es6' },
  sourceMaps: 'inline',
};

export default {
  // A global option: jest ignores it inside a project.
  testTimeout: 120_000,
  // Most test files wait on real servers and child processes rather than compute: two run side by
  // side (every server and process they start takes a free port of its own), where jest's default
  // on a 2-core machine would run one at a time.
  maxWorkers: 2,
  globalSetup: '<rootDir>/jest/global-setup.mjs',
  globalTeardown: '<rootDir>/jest/global-teardown.mjs',
  projects: packages.map((name) => ({
    displayName: name,
    rootDir: `<rootDir>/packages/${name}`,
    testEnvironment: 'node',
    extensionsToTreatAsEsm: ['.ts'],
    transform: { '^.+\\.ts$': ['@swc/jest', swc] },
    testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/test/**/*.test.ts'],
  })),
};
