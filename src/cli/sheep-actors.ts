// `sheep-actors`: start a sheep (start DIR ...), a whole in-process cluster (cluster DIR --nodes N),
// or replay a recorded event log (replay FILE). `sheep DIR ...` is the Sheepdog-compatible form of start.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hub } from '../cluster/hub.js';
import { InProcessDriver } from '../cluster/in-process.js';
import { LocalDriver, DEFAULT_LOCAL_HUB } from '../cluster/local.js';
import { ZooKeeperDriver, parseZooKeeperSpec } from '../cluster/zookeeper.js';
import type { ClusterDriver } from '../cluster/driver.js';
import { Sheep } from '../node/sheep.js';
import { MultiDiskStore } from '../store/md.js';
import { MD_MAX_DISK } from '../proto/constants.js';
import { ActorSystem } from '../runtime/system.js';
import { HashPool } from '../runtime/hash-pool.js';
import { LogCorruptedError } from '../runtime/event-log.js';
import { formatDivergence, replayLog } from '../runtime/replay.js';
import { parseNbdAddress, startNbdForSheep } from '../nbd/server.js';
import { MAX_WRITE_BACK_BYTES } from '../nbd/vdi-device.js';

const mibToBytes = (mib: number | undefined): number | undefined => (mib === undefined ? undefined : mib * 1024 * 1024);
import { runSim, runSimReplay } from './sim.js';
import { intArg, UsageError } from './args.js';
import { isSimLog } from '../sim/sim-log.js';

export { UsageError };

export interface StartArgs {
  dir: string;
  /** Object disks after DIR (multi-disk); empty: objects in DIR/obj. */
  disks?: string[];
  port: number;
  zone?: number;
  driver: string;
  addr?: string;
  bind: string;
  noSync: boolean;
  gateway: boolean;
  vnodes?: number;
  logDir?: string;
  logLevel: number;
  pidFile?: string;
  foreground: boolean;
  record?: string;
  shards: number;
  /** -R max=N,interval=MS: recovery throttling */
  recovery?: { max: number; intervalMs: number };
  /** --nbd [HOST:]PORT: serve VDIs over NBD from this sheep */
  nbd?: { host: string; port: number };
  /** --nbd-writeback MIB: per open VDI, writes acknowledged before the replicas have them (0: none) */
  nbdWriteBackMib?: number;
}

/** Parses Sheepdog's sheep options (the subset this node supports, with its validation). */
export function parseStartArgs(argv: string[]): StartArgs {
  const a: StartArgs = { dir: '', port: 7000, driver: 'local', bind: '0.0.0.0', noSync: false, gateway: false, logLevel: 6, foreground: false, shards: 1 };
  const dirs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = () => argv[++i];
    switch (arg) {
      case '-p': case '--port': a.port = intArg('-p', next(), 1, 65535); break;
      case '-z': case '--zone': a.zone = intArg('-z', next(), 0, 0xffffffff); break;
      case '-c': case '--cluster': { const v = next(); if (!v) throw new UsageError('option -c requires a driver'); a.driver = v; break; }
      case '-y': case '--myaddr': { const v = next(); if (!v) throw new UsageError('option -y requires an address'); a.addr = v; break; }
      case '-b': case '--bindaddr': { const v = next(); if (!v) throw new UsageError('option -b requires an address'); a.bind = v; break; }
      case '-n': case '--nosync': a.noSync = true; break;
      case '-g': case '--gateway': a.gateway = true; break;
      case '-V': case '--vnodes': a.vnodes = intArg('-V', next(), 1, 65535); break;
      case '-l': case '--log': {
        const v = next();
        if (!v) throw new UsageError('option -l requires dir=,level=');
        for (const kv of v.split(',')) {
          const [k, val] = kv.split('=');
          if (k === 'dir' && val) a.logDir = val;
          else if (k === 'level' && val !== undefined) a.logLevel = intArg('-l level', val, 0, 7);
          else throw new UsageError(`invalid -l option '${kv}' (expected dir=PATH or level=0..7)`);
        }
        break;
      }
      case '-P': case '--pidfile': { const v = next(); if (!v) throw new UsageError('option -P requires a path'); a.pidFile = v; break; }
      case '-f': case '--foreground': a.foreground = true; break;
      case '--record': { const v = next(); if (!v) throw new UsageError('option --record requires a file'); a.record = v; break; }
      case '--shards': a.shards = intArg('--shards', next(), 0, 64); break;
      case '-R': case '--recovery': {
        const v = next();
        if (!v) throw new UsageError('option -R requires max=N,interval=MS');
        const r = { max: 0, intervalMs: 0 };
        for (const kv of v.split(',')) {
          const [k, val] = kv.split('=');
          if (k === 'max') r.max = intArg('-R max', val, 1, 1024);
          else if (k === 'interval') r.intervalMs = intArg('-R interval', val, 0, 3_600_000);
          else throw new UsageError(`invalid -R option '${kv}' (expected max=N,interval=MS)`);
        }
        a.recovery = r;
        break;
      }
      case '--nbd': {
        const v = next();
        const addr = v === undefined ? null : parseNbdAddress(v, '');
        if (!addr) throw new UsageError(`option --nbd requires [HOST:]PORT, got '${v ?? ''}'`);
        a.nbd = addr;
        break;
      }
      case '--nbd-writeback':
        a.nbdWriteBackMib = intArg('--nbd-writeback', next(), 0, MAX_WRITE_BACK_BYTES >> 20);
        break;
      default:
        if (arg.startsWith('-')) throw new UsageError(`unknown option '${arg}'`);
        dirs.push(arg);
    }
  }
  if (dirs.length !== 1) throw new UsageError(dirs.length === 0 ? 'a store directory is required' : `only one store directory is allowed, got ${dirs.join(' ')}`);
  // sheep DIR[,DISK1,DISK2...]: DIR holds config and epochs; objects go to the disks (multi-disk) or DIR/obj.
  const [dir, ...disks] = dirs[0]!.split(',');
  if (!dir || disks.some((d) => d === '')) throw new UsageError(`empty path in '${dirs[0]}'`);
  if (disks.length > MD_MAX_DISK) throw new UsageError(`at most ${MD_MAX_DISK} disks, got ${disks.length}`);
  a.dir = resolve(dir);
  a.disks = disks.map((d) => resolve(d));
  if (new Set(a.disks).size !== a.disks.length) throw new UsageError(`duplicate disk in '${dirs[0]}'`);
  return a;
}

function makeDriver(spec: string): ClusterDriver {
  const [name, ...rest] = spec.split(':');
  if (name === 'local') {
    const opt = rest.join(':');
    const path = opt.startsWith('path=') ? opt.slice(5) : process.env.SHEEP_LOCAL_HUB || DEFAULT_LOCAL_HUB;
    return new LocalDriver(path, (err) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    });
  }
  if (name === 'zookeeper') {
    // zookeeper:HOST:PORT[,HOST:PORT...][,timeout=MS][,path=/BASE]. On session loss this sheep exits
    // non-zero, as Sheepdog's does: the others have already removed it; a supervisor restarts it.
    let spec;
    try {
      spec = parseZooKeeperSpec(rest.join(':'));
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    return new ZooKeeperDriver({
      ...spec,
      log: (level, msg) => process.stderr.write(`${level}: ${msg}\n`),
      onSessionLost: (err) => {
        process.stderr.write(`zookeeper session lost (${err.message}): exiting; restart this sheep to rejoin\n`);
        process.exit(1);
      },
    });
  }
  throw new UsageError(`cluster driver '${name}' is not available (drivers: local, zookeeper)`);
}

export async function runStart(argv: string[], invokedAs: string): Promise<number> {
  const a = parseStartArgs(argv);
  mkdirSync(a.dir, { recursive: true });
  if (!a.foreground) {
    // Daemonize: re-run ourselves in the foreground, detached, keeping the `<path> DIR <options>` shape.
    const script = fileURLToPath(new URL(`../bin/${invokedAs}.js`, import.meta.url));
    const childArgs = invokedAs === 'sheep' ? [...argv, '-f'] : ['start', ...argv, '-f'];
    const out = openSync(join(a.logDir ?? a.dir, 'sheep.log'), 'a');
    const child = spawn(process.execPath, [script, ...childArgs], { detached: true, stdio: ['ignore', out, out] });
    child.unref();
    return 0;
  }
  const sheep = new Sheep({
    dir: a.dir,
    disks: a.disks,
    port: a.port,
    addr: a.addr ?? (a.bind === '0.0.0.0' || a.bind === '::' ? '127.0.0.1' : a.bind),
    bind: a.bind,
    zone: a.zone ?? 0,
    gatewayOnly: a.gateway,
    noSync: a.noSync,
    vnodes: a.vnodes,
    driver: makeDriver(a.driver),
    actorWorkers: a.shards,
    record: a.record ? resolve(a.record) : undefined,
    logLevel: a.logLevel,
    logDir: a.logDir ? resolve(a.logDir) : undefined,
    onStop: (why) => {
      process.stderr.write(`sheep stopped: ${why}\n`);
      if (sheep.diskError) process.exit(1); // left the cluster on a disk error (EIO): a supervisor must look
      process.exit(0);
    },
  });
  if (a.recovery) sheep.recovery.throttle = { maxExecCount: a.recovery.max, intervalMs: a.recovery.intervalMs };
  await sheep.start();
  if (a.nbd) await startNbdForSheep(sheep, { host: a.nbd.host || (a.bind === '0.0.0.0' || a.bind === '::' ? '127.0.0.1' : a.bind), port: a.nbd.port }, mibToBytes(a.nbdWriteBackMib));
  if (a.pidFile) writeFileSync(a.pidFile, `${process.pid}\n`);
  const bye = () => void sheep.stop('signal').then(() => process.exit(0));
  process.on('SIGTERM', bye);
  process.on('SIGINT', bye);
  // Test hook: the disk fails with EIO from now on (of several disks, the first one: MultiDiskStore.injectEio).
  process.on('SIGUSR2', () => (sheep.store as MultiDiskStore).injectEio(true));
  return -1; // keep running
}

export async function runCluster(argv: string[]): Promise<number> {
  let dir = '';
  let nodes = 3;
  let port = 7000;
  let noSync = false;
  let record: string | undefined;
  let nbdPort: number | undefined;
  let nbdWriteBackMib: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--record') {
      record = argv[++i];
      if (!record) throw new UsageError('option --record requires a file');
    } else if (arg === '--nodes' || arg === '-N') nodes = intArg('--nodes', argv[++i], 1, 64);
    else if (arg === '--port' || arg === '-p') port = intArg('--port', argv[++i], 1, 65535);
    else if (arg === '--nbd-port') nbdPort = intArg('--nbd-port', argv[++i], 1, 65535);
    else if (arg === '--nbd-writeback') nbdWriteBackMib = intArg('--nbd-writeback', argv[++i], 0, MAX_WRITE_BACK_BYTES >> 20);
    else if (arg === '-n' || arg === '--nosync') noSync = true;
    else if (arg.startsWith('-')) throw new UsageError(`unknown option '${arg}'`);
    else dir = arg;
  }
  if (!dir) throw new UsageError('a base directory is required: sheep-actors cluster DIR [--nodes N] [--port P]');
  if (port + nodes - 1 > 65535) throw new UsageError('ports run past 65535');
  const hub = new Hub();
  const actors = await ActorSystem.start({ workers: 1, kindModules: [new URL('../actors/index.js', import.meta.url).href], record: record ? resolve(record) : undefined });
  const hashPool = new HashPool(1);
  const sheep: Sheep[] = [];
  for (let i = 0; i < nodes; i++) {
    const s = new Sheep({ dir: resolve(dir, String(i)), port: port + i, addr: '127.0.0.1', bind: '127.0.0.1', zone: i, gatewayOnly: false, noSync, driver: new InProcessDriver(hub), actors, hashPool });
    mkdirSync(resolve(dir, String(i)), { recursive: true });
    await s.start();
    sheep.push(s);
  }
  const nbd = nbdPort === undefined ? null : await startNbdForSheep(sheep[0]!, { host: '127.0.0.1', port: nbdPort }, mibToBytes(nbdWriteBackMib));
  process.stdout.write(`cluster of ${nodes} sheep on 127.0.0.1:${port}-${port + nodes - 1} (stores in ${resolve(dir)}/0..${nodes - 1})\n`);
  if (nbd) process.stdout.write(`NBD exports on nbd://127.0.0.1:${nbd.port}/VDI (through sheep 127.0.0.1:${port})\n`);
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    await nbd?.close();
    await Promise.all(sheep.map((s) => s.stop('cluster stop')));
    await actors.shutdown();
    await hashPool.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stopAll());
  process.on('SIGINT', () => void stopAll());
  return -1;
}

export async function runReplay(argv: string[]): Promise<number> {
  const file = argv[0];
  if (!file) throw new UsageError('usage: sheep-actors replay FILE');
  if (isSimLog(file)) return runSimReplay(file);
  await import('../actors/index.js');
  try {
    const r = replayLog(file);
    if (r.divergence) {
      process.stderr.write(`${formatDivergence(r.divergence)}\n`);
      return 1;
    }
    process.stdout.write(`replay ok: ${r.records} records, ${r.actors} actors, ${r.inputs} inputs, ${r.digestsChecked} digests matched\n`);
    return 0;
  } catch (e) {
    if (e instanceof LogCorruptedError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

const USAGE = `Usage: sheep-actors <command> [options]
  start DIR [-p PORT] [-z ZONE] [-c DRIVER] [-y ADDR] [-b BIND] [-n] [-g] [-V N] [-l dir=,level=] [-P PIDFILE] [-f]
            [-R max=N,interval=MS] [--nbd [HOST:]PORT] [--nbd-writeback MIB] [--shards N] [--record FILE]
  cluster DIR [--nodes N] [--port P] [-n] [--record FILE] [--nbd-port Q] [--nbd-writeback MIB]
                                              N sheep in one process (ports P.., stores DIR/i, zones i)
  sim [--seed S | --seeds A-B] [--nodes N] [--copies C] [--ops K] [--clients M]
      [--faults kill,restart,partition,disk-eio,disk-full,slow|all|none] [--record FILE] [--log FILE]
                                              deterministic simulation of a whole cluster in one thread
  replay FILE                                 re-run a recorded event log or simulation and check it
`;

export async function main(argv: string[], invokedAs: 'sheep-actors' | 'sheep'): Promise<void> {
  try {
    let code: number;
    if (invokedAs === 'sheep') code = await runStart(argv, 'sheep');
    else {
      const [cmd, ...rest] = argv;
      if (cmd === 'start') code = await runStart(rest, 'sheep-actors');
      else if (cmd === 'cluster') code = await runCluster(rest);
      else if (cmd === 'replay') code = await runReplay(rest);
      else if (cmd === 'sim') code = await runSim(rest);
      else if (!cmd || cmd === '-h' || cmd === '--help') {
        process.stdout.write(USAGE);
        code = cmd ? 0 : 64;
      } else throw new UsageError(`unknown command '${cmd}'`);
    }
    if (code >= 0) process.exit(code);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${invokedAs}: ${e.message}\n${invokedAs === 'sheep-actors' ? USAGE : ''}`);
      process.exit(64);
    }
    process.stderr.write(`${invokedAs}: ${(e as Error)?.stack ?? e}\n`);
    process.exit(1);
  }
}
