/**
 * Jest runs the TypeScript sources as native ESM transformed by SWC (types are checked by `tsc`, not here).
 * `unit` needs nothing running; `integration` needs the services from `npm run services:up` (scripts/run-tests.ts
 * starts them) and migrates the test database once per run. `fault` stops and starts those shared services, so
 * scripts/run-tests.ts runs it on its own, after the other projects, with --runInBand.
 */
const transform = {
  '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2024' }, module: { type: 'es6' } }],
};
const common = { testEnvironment: 'node', extensionsToTreatAsEsm: ['.ts'], transform };

export default {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      slowTestThreshold: 20,
    },
    {
      ...common,
      displayName: 'fault',
      testMatch: ['<rootDir>/test/fault/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      slowTestThreshold: 120,
    },
  ],
};
