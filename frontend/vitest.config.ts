import { fileURLToPath, URL } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vitest/config'

/** Unit tests: stores, composables and pure logic, in jsdom. */
export default defineConfig({
  plugins: [vue()],
  resolve: { alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) } },
  test: {
    environment: 'jsdom',
    include: ['tests/unit/**/*.test.ts'],
    pool: 'threads',
    poolOptions: { threads: { maxThreads: 2, minThreads: 1 } },
    // `vitest run --coverage` (scripts/check-frontend.sh): the state and logic
    // that several views share, which the unit tests are for; the views and
    // components are the browser tests' part. Below 80 % of lines fails the run.
    coverage: {
      provider: 'v8',
      include: ['src/stores/**', 'src/composables/**'],
      reporter: ['text', 'json-summary'],
      reportsDirectory: 'coverage',
      thresholds: {
        'src/stores/**': { lines: 80 },
        'src/composables/**': { lines: 80 },
      },
    },
  },
})
