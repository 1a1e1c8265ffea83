// Builds the dashboard into ../assets (committed; embedded by the Rust crate). The build must be
// deterministic: `.ci/run` rebuilds from the lockfile and fails if the output differs.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: '../assets',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    reportCompressedSize: false,
    // No inline <script>: the CSP forbids it (script-src 'self').
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
});
