#!/usr/bin/env node
// libuv runs file I/O on a thread pool (4 threads by default); every replica write waits in fdatasync
// there, so a node serving many requests needs more threads. Set before the pool is first used.
process.env.UV_THREADPOOL_SIZE ??= '64';
const { main } = await import('../cli/sheep-actors.js');
await main(process.argv.slice(2), 'sheep-actors');
