import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Served by the API process under /console: every asset is bundled (no external requests).
export default defineConfig({
  base: '/console/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, assetsInlineLimit: 0 },
});
