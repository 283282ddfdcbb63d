// The client imports RealtimeClient from '@supabase/supabase-js'. Browsers cannot load that package's ES
// modules without a bundler (extensionless imports), so the page loads supabase-js's own UMD build
// (clients/js/node_modules/@supabase/supabase-js/dist/umd/supabase.js, which defines `supabase`) and
// the import map points the package name at this module.
export const { RealtimeClient } = globalThis.supabase
