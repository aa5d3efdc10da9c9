import { fileURLToPath, URL } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'

// The API is same-origin for the app: in `vite` and `vite preview` these paths are
// proxied to a flashcore (FLASHCORE_URL, default the `make run` address); in
// production the flashcore binary serves the built files itself.
const target = process.env.FLASHCORE_URL ?? 'http://127.0.0.1:8080'
const proxy = Object.fromEntries(
  ['/v1', '/health', '/ready', '/openapi.json'].map((path) => [path, { target, changeOrigin: false }]),
)

export default defineConfig({
  plugins: [vue()],
  resolve: { alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) } },
  server: { proxy },
  preview: { proxy },
  build: { manifest: true, target: 'es2022', sourcemap: false },
})
