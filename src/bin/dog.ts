#!/usr/bin/env node
// The `dog` executable: Sheepdog's admin CLI over the wire protocol (see src/cli/dog).
import { main } from '../cli/dog/main.js';

// A closed stdout (dog vdi read … | head) ends dog quietly, as SIGPIPE ends the C dog.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(141);
  throw e;
});

const code = await main(process.argv.slice(2));
// let buffered stdout/stderr drain, then leave with dog's exit status
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
