// Entry point of a shard worker: imports the actor kinds, builds its ShardRuntime from the wiring the home
// thread prepared, and exposes the control plane over comlink.
import { workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { RealClock } from './clock.js';
import type { Services } from './actor-host.js';
import { ShardRuntime, type ShardControl, type ShardWiring } from './system.js';

const { wiring, control } = workerData as { wiring: ShardWiring; control: MessagePort };
for (const m of wiring.kindModules) await import(m);
let services: Services | undefined;
if (wiring.servicesModule) {
  const mod = (await import(wiring.servicesModule)) as { createServices(shard: number): Services };
  services = mod.createServices(wiring.shard);
}
const runtime = new ShardRuntime(wiring, { clock: new RealClock(), services });
runtime.start();

const api: ShardControl = {
  inspect: () => runtime.host.inspect(),
  stats: () => runtime.host.getStats(),
  digest: () => runtime.host.digest(),
  idle: () => runtime.host.idle(),
  shutdown: async () => {
    await runtime.close();
    setImmediate(() => control.close());
  },
};
Comlink.expose(api, nodeEndpoint(control));
