import { defineConfig } from 'vitest/config'

/**
 * Browser tests: Debian's Chromium driven by playwright-core against the real
 * flashcore release binary serving the built app (`dist/`, made by `npm run build`).
 * One file at a time, one
 * worker: they share the machine's two cores with the Rust build.
 */
export default defineConfig({
  test: {
    environment: 'node',
    include: ['tests/browser/**/*.test.ts'],
    globalSetup: ['tests/browser/global-setup.ts'],
    fileParallelism: false,
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
