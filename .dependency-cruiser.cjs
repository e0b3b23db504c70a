/**
 * The package table of DESIGN.md as rules: each package may import only the packages listed
 * for it, and no module graph may contain a cycle.
 */
const allowed = {
  // The shared vocabulary and wire schemas: a leaf every other package may use.
  contracts: [],
  db: ['contracts'],
  providers: ['contracts'],
  jobs: ['contracts'],
  testkit: ['providers', 'contracts'],
  worker: ['db', 'providers', 'jobs', 'contracts'],
  scheduler: ['db', 'jobs', 'contracts'],
  api: ['db', 'jobs', 'contracts'],
  cli: ['api', 'console', 'scheduler', 'worker', 'db', 'jobs', 'providers', 'contracts'],
  client: ['contracts'],
  // The console's pages use the API's schemas as types only; the API never imports the console.
  console: ['api', 'contracts'],
  // The demo and the benchmarks: the command line plus the testkit's throwaway directories. Never
  // in the image, so nothing imports it.
  devtools: ['cli', 'api', 'console', 'scheduler', 'worker', 'db', 'jobs', 'providers', 'testkit', 'contracts'],
};
const all = Object.keys(allowed);

const forbidden = [
  {
    name: 'no-circular',
    severity: 'error',
    comment: 'Import cycles make start-up order and testing fragile.',
    from: {},
    to: { circular: true },
  },
  ...all.map((pkg) => {
    const denied = all.filter((other) => other !== pkg && !allowed[pkg].includes(other));
    return {
      name: `${pkg}-imports`,
      severity: 'error',
      comment: `packages/${pkg} may import only: ${allowed[pkg].join(', ') || 'no other package'}`,
      // Tests may use the testkit to start real servers; production sources may not unless allowed.
      from: { path: `^packages/${pkg}/src/`, pathNot: '\\.test\\.ts$' },
      to: { path: `^packages/(${denied.join('|')})/` },
    };
  }),
  {
    name: 'tests-only-add-testkit',
    severity: 'error',
    comment: 'Tests may import the testkit besides the package table, nothing more.',
    from: { path: '^packages/(contracts|db|providers|jobs)/(test/|src/.*\\.test\\.ts$)' },
    to: { path: '^packages/(worker|scheduler|api|cli)/' },
  },
  {
    name: 'sql-only-in-db',
    severity: 'error',
    comment:
      'Every SQL statement lives in packages/db (DESIGN.md): other packages call its repositories and never open a PostgreSQL client or build queries themselves. Tests, the testkit and the benchmarks (dev-only) may.',
    from: {
      path: '^packages/(?!db/)[^/]+/',
      pathNot: ['^packages/[^/]+/test/', '\\.test\\.ts$', '^packages/testkit/', '^packages/devtools/src/bench/'],
    },
    // Resolved packages sit under node_modules; a package that does not list the dependency
    // leaves the bare name unresolved, which must be refused too.
    to: { path: '(^|node_modules/)(postgres|drizzle-orm|pg)(/|$)' },
  },
];

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: require('node:path').join(__dirname, 'tsconfig.base.json') },
    combinedDependencies: true,
    preserveSymlinks: false,
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'default'], extensions: ['.ts', '.js'] },
  },
};
