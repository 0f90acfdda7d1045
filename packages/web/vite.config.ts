import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

/** The UI is served by the Tessera server at `/`; `vite` (dev) proxies the API to a running server. */
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    // The server's paths; `/projects/<name>/members` is the UI's (keys starting with ^ are patterns).
    proxy: Object.fromEntries(
      ['/api', '^/projects/[^/]+/dicom-web', '/dicom-web', '/applications'].map((p) => [p, { target: process.env.TESSERA_URL ?? 'http://127.0.0.1:8080', changeOrigin: false }]),
    ),
  },
});
