// `dog node ...` (dog/node.c): list, info, recovery (info / set-throttle / get-throttle), kill,
// md (info / plug / unplug), stat, log level, vnodes set.

import {
  Flag,
  Op,
  RecoveryPhase,
  Res,
  SD_MD_INFO_SIZE,
  SD_STAT_SIZE,
  RECOVERY_STATE_SIZE,
  RECOVERY_THROTTLING_SIZE,
  resultString,
} from '../../proto/constants.js';
import { readNodeRsp } from '../../proto/header.js';
import {
  decodeMdInfo,
  decodeRecoveryState,
  decodeRecoveryThrottling,
  encodeRecoveryThrottling,
  formatAddrPort,
  type SdNode,
} from '../../proto/structs.js';
import {
  CMD_NEED_ARG,
  CMD_NEED_NODELIST,
  doGenericSubcommand,
  type Argv,
  type Command,
  type RunContext,
  type SdOption,
  type Subcommand,
} from './command.js';
import {
  EXIT_FAILURE,
  EXIT_SUCCESS,
  EXIT_SYSFAIL,
  EXIT_USAGE,
  cFixed,
  cInt,
  exit,
  getSink,
  isNumeric,
  out,
  padL,
  padR,
  sdErr,
  sdInfo,
  showProgress,
  strnumberRaw,
  strtol,
} from './common.js';
import type { DogContext } from './ctx.js';

export const NODE_OPTIONS: SdOption[] = [
  { ch: 'A', name: 'all', hasArg: false, desc: 'show md information of all the nodes' },
  { ch: 'P', name: 'progress', hasArg: false, desc: 'show progress of recovery in the node' },
  { ch: 'w', name: 'watch', hasArg: false, desc: 'watch the stat every second' },
  { ch: 'l', name: 'local', hasArg: false, desc: 'issue request to local node' },
  { ch: 'f', name: 'force', hasArg: false, desc: 'ignore the confirmation' },
];

const LOGLEVELS = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'];

/** A request that must succeed: the response, or null after dog's "Failed to execute request". */
async function execOk(ctx: DogContext, req: Parameters<DogContext['exec']>[0], data?: Uint8Array): Promise<NonNullable<Awaited<ReturnType<DogContext['exec']>>> | null> {
  const rsp = await ctx.exec(req, data);
  if (rsp && rsp.result === Res.SUCCESS) return rsp;
  sdErr('Failed to execute request');
  return null;
}

const MD_PLUG_PRINT =
  '    __\n' +
  "   ()'`;\n" +
  '   /\\|`\n' +
  '  /  |   Caution! The directories to be plugged will be purged.\n' +
  '(/_)_|_  Are you sure you want to continue? [yes/no]: ';

const MD_UNPLUG_PRINT =
  '    __\n' +
  "   ()'`;\n" +
  '   /\\|`\n' +
  '  /  |   Caution! Recovery will be triggered after unplugging.\n' +
  '(/_)_|_  Are you sure you want to continue? [yes/no]: ';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One row of `dog node list`. */
export function formatNodeListLine(i: number, n: SdNode, raw: boolean): string {
  const host = formatAddrPort(n.nid.addr, n.nid.port);
  return raw ? `${i} ${host} ${n.nrVnodes} ${n.zone >>> 0}\n` : `${padL(i, 4)}   ${padR(host, 20)}\t${padL(n.nrVnodes, 2)}${padL(n.zone >>> 0, 11)}\n`;
}

/** (int)(((double)used / size) * 100) */
function ratio(used: bigint, size: bigint): number {
  return cInt((Number(used) / Number(size)) * 100);
}

export function nodeCommand(): Command {
  const d = { allNodes: false, recoveryProgress: false, watch: false, local: false, force: false };

  async function nodeList(ctx: RunContext): Promise<number> {
    if (ctx.json) {
      const doc = ctx.nodes.map((n, i) => ({ id: i, host: n.nid.addr, port: n.nid.port, vnodes: n.nrVnodes, zone: n.zone >>> 0 }));
      out(JSON.stringify(doc) + '\n');
      return EXIT_SUCCESS;
    }
    if (!ctx.raw) out('  Id   Host:Port         V-Nodes       Zone\n');
    ctx.nodes.forEach((n, i) => out(formatNodeListLine(i, n, ctx.raw)));
    return EXIT_SUCCESS;
  }

  async function nodeInfo(ctx: RunContext): Promise<number> {
    let success = 0,
      i = 0;
    let totalSize = 0n,
      totalAvail = 0n,
      totalVdiSize = 0n;
    const rows: Record<string, unknown>[] = [];
    if (!ctx.raw && !ctx.json) out('Id\tSize\tUsed\tAvail\tUse%\n');
    for (const n of ctx.nodes) {
      const { ret, rsp } = await ctx.sendLightReq({ opcode: Op.STAT_SHEEP }, n.nid);
      const st = rsp ? readNodeRsp(rsp.raw) : { storeSize: 0n, storeFree: 0n, nrNodes: 0 };
      if (!ret) {
        const used = BigInt.asUintN(64, st.storeSize - st.storeFree);
        const r = st.storeSize === 0n ? 0 : ratio(used, st.storeSize);
        if (ctx.json) rows.push({ id: i, host: n.nid.addr, port: n.nid.port, size: Number(st.storeSize), used: Number(used), avail: Number(st.storeFree), use: r });
        else if (ctx.raw) out(`${i} ${ctx.strnumber(st.storeSize)} ${ctx.strnumber(used)} ${ctx.strnumber(st.storeFree)} ${r}%\n`);
        else out(`${padL(i, 2)}\t${ctx.strnumber(st.storeSize)}\t${ctx.strnumber(used)}\t${ctx.strnumber(st.storeFree)}\t${padL(r, 3)}%\n`);
        i++;
        success++;
      }
      totalSize += st.storeSize;
      totalAvail += st.storeFree;
    }
    if (success === 0) {
      sdErr('Cannot get information from any nodes');
      return EXIT_SYSFAIL;
    }
    const pr = await ctx.parseVdi((_vid, _n, _t, _s, _f, inode) => {
      if (!inode.isSnapshot()) totalVdiSize += inode.h.vdiSize;
    }, false);
    if (pr < 0) return EXIT_SYSFAIL;
    const used = BigInt.asUintN(64, totalSize - totalAvail);
    const r = ratio(used, totalSize);
    if (ctx.json) {
      out(
        JSON.stringify({
          nodes: rows,
          total: { size: Number(totalSize), used: Number(used), avail: Number(totalAvail), use: r },
          total_vdi_size: Number(totalVdiSize),
        }) + '\n',
      );
    } else if (ctx.raw) out(`Total ${ctx.strnumber(totalSize)} ${ctx.strnumber(used)} ${ctx.strnumber(totalAvail)} ${r}% ${ctx.strnumber(totalVdiSize)}\n`);
    else
      out(
        `Total\t${ctx.strnumber(totalSize)}\t${ctx.strnumber(used)}\t${ctx.strnumber(totalAvail)}\t${padL(r, 3)}%\n\n` +
          `Total virtual image size\t${ctx.strnumber(totalVdiSize)}\n`,
      );
    return EXIT_SUCCESS;
  }

  async function getRecoveryState(ctx: DogContext) {
    const rsp = await ctx.exec({ opcode: Op.STAT_RECOVERY, dataLength: RECOVERY_STATE_SIZE });
    if (!rsp) {
      sdErr('Failed to execute request');
      return null;
    }
    if (rsp.result !== Res.SUCCESS) {
      sdErr(resultString(rsp.result));
      return null;
    }
    const b = Buffer.alloc(RECOVERY_STATE_SIZE);
    rsp.data.copy(b);
    return decodeRecoveryState(b);
  }

  async function recoveryProgress(ctx: RunContext): Promise<number> {
    let st = await getRecoveryState(ctx);
    if (!st) return EXIT_SYSFAIL;
    if (!st.inRecovery) return EXIT_SUCCESS;
    const tty = getSink().stderrIsTTY();
    for (;;) {
      const prevTotal = st.nrTotal;
      const next = await getRecoveryState(ctx);
      if (!next) return EXIT_SYSFAIL;
      st = next;
      if (!st.inRecovery) {
        showProgress(prevTotal, prevTotal, true);
        break;
      }
      switch (st.state) {
        case RecoveryPhase.PREPARE_LIST:
          if (tty) getSink().err('\rpreparing a checked object list...');
          break;
        case RecoveryPhase.NOTIFY_COMPLETION:
          if (tty) getSink().err('\rnotifying a completion of recovery...');
          break;
        case RecoveryPhase.RECOVER_OBJ:
          showProgress(st.nrFinished, st.nrTotal, true);
          break;
        default:
          sdErr(`unknown state of recovery: ${st.state}`);
          exit(EXIT_SYSFAIL);
      }
      await sleep(1000);
    }
    return EXIT_SUCCESS;
  }

  async function recoveryInfo(ctx: RunContext): Promise<number> {
    if (d.recoveryProgress) return recoveryProgress(ctx);
    if (!ctx.raw && !ctx.json) {
      out('Nodes In Recovery:\n');
      out('  Id   Host:Port         V-Nodes       Zone       Progress\n');
    }
    const rows: Record<string, unknown>[] = [];
    let i = 0;
    for (const n of ctx.nodes) {
      const rsp = await ctx.exec({ opcode: Op.STAT_RECOVERY, dataLength: RECOVERY_STATE_SIZE }, undefined, n.nid);
      if (!rsp) return EXIT_SYSFAIL;
      if (rsp.result !== Res.SUCCESS) {
        sdErr(resultString(rsp.result));
        return EXIT_FAILURE;
      }
      const b = Buffer.alloc(RECOVERY_STATE_SIZE);
      rsp.data.copy(b);
      const st = decodeRecoveryState(b);
      if (st.inRecovery) {
        const host = formatAddrPort(n.nid.addr, n.nid.port);
        const pct = Math.fround(Math.fround(100 * Math.fround(Number(st.nrFinished))) / Math.fround(Number(st.nrTotal)));
        if (ctx.json)
          rows.push({ id: i, host: n.nid.addr, port: n.nid.port, vnodes: n.nrVnodes, zone: n.zone | 0, finished: Number(st.nrFinished), total: Number(st.nrTotal) });
        else if (ctx.raw) out(`${i} ${host} ${n.nrVnodes} ${n.zone | 0} ${st.nrFinished} ${st.nrTotal}\n`);
        else out(`${padL(i, 4)}   ${padR(host, 20)}${padL(n.nrVnodes, 5)}${padL(n.zone | 0, 11)}${padL(cFixed(pct, 1), 11)}%\n`);
      }
      i++;
    }
    if (ctx.json) out(JSON.stringify(rows) + '\n');
    return EXIT_SUCCESS;
  }

  async function recoverySet(ctx: RunContext, argv: Argv): Promise<number> {
    const a = argv.list[argv.optind];
    const b = argv.list[argv.optind + 1];
    if (a === undefined || b === undefined) {
      sdErr(`Invalid interval max (${a ?? '(null)'}), interval (${b ?? '(null)'})`);
      exit(EXIT_USAGE);
    }
    const m = strtol(a);
    if (m.end === 0 || m.end !== a.length || m.value < 0 || m.value >= 0xffffffff) {
      sdErr(`Invalid max (${a})`);
      exit(EXIT_USAGE);
    }
    argv.optind++;
    const iv = strtol(b);
    if (iv.end === 0 || iv.end !== b.length || iv.value < 0) {
      sdErr(`Invalid interval (${b})`);
      exit(EXIT_USAGE);
    }
    if ((m.value === 0 && iv.value !== 0) || (m.value !== 0 && iv.value === 0)) {
      sdErr(`Invalid interval max (${m.value}), interval (${iv.value})`);
      exit(EXIT_USAGE);
    }
    const payload = encodeRecoveryThrottling({ maxExecCount: m.value, queueWorkInterval: BigInt(iv.value), throttling: false });
    const rsp = await execOk(ctx, { opcode: Op.SET_RECOVERY, flags: Flag.CMD_WRITE }, payload);
    if (!rsp) return -1;
    return EXIT_SUCCESS;
  }

  async function recoveryGet(ctx: RunContext): Promise<number> {
    const rsp = await execOk(ctx, { opcode: Op.GET_RECOVERY, dataLength: RECOVERY_THROTTLING_SIZE });
    if (!rsp) return -1;
    const b = Buffer.alloc(RECOVERY_THROTTLING_SIZE);
    rsp.data.copy(b);
    const t = decodeRecoveryThrottling(b);
    sdInfo(`max (${t.maxExecCount}), interval (${t.queueWorkInterval})`);
    return EXIT_SUCCESS;
  }

  const recoveryCmd: Subcommand[] = [
    { name: 'info', opts: 'aphPrT', desc: 'show recovery information of nodes (default)', flags: CMD_NEED_NODELIST, fn: recoveryInfo, options: NODE_OPTIONS },
    { name: 'set-throttle', arg: '<max> <interval>', desc: 'set new throttling', flags: CMD_NEED_ARG | CMD_NEED_NODELIST, fn: recoverySet, options: NODE_OPTIONS },
    { name: 'get-throttle', desc: 'get current throttling', flags: CMD_NEED_NODELIST, fn: recoveryGet, options: NODE_OPTIONS },
  ];

  async function nodeRecovery(ctx: RunContext, argv: Argv): Promise<number> {
    if (argv.atEnd) {
      const ret = await ctx.updateNodeList();
      if (ret < 0) {
        sdErr('Failed to get node list');
        exit(EXIT_SYSFAIL);
      }
      return recoveryInfo(ctx);
    }
    return doGenericSubcommand(recoveryCmd, ctx, argv);
  }

  async function nodeKill(ctx: RunContext, argv: Argv): Promise<number> {
    let nid = d.local ? ctx.sdNid : null;
    if (!argv.atEnd) {
      if (nid) {
        sdErr("don't use -l option and specify node id at the same time");
        exit(EXIT_USAGE);
      }
      const p = argv.next()!;
      if (!isNumeric(p)) {
        sdErr(`Invalid node id '${p}', please specify a numeric value`);
        exit(EXIT_USAGE);
      }
      const id = strtol(p).value | 0;
      if (id < 0 || id >= ctx.nodesNr) {
        sdErr(`Invalid node id '${id}'`);
        exit(EXIT_USAGE);
      }
      nid = ctx.nodes[id]!.nid;
    }
    if (!nid) {
      sdErr('please specify -l option or node id');
      exit(EXIT_USAGE);
    }
    const { ret } = await ctx.sendLightReq({ opcode: Op.KILL_NODE }, nid);
    if (ret) {
      sdErr('Failed to execute request');
      exit(EXIT_FAILURE);
    }
    return EXIT_SUCCESS;
  }

  async function nodeStat(ctx: RunContext): Promise<number> {
    const read = async () => {
      const rsp = await ctx.exec({ opcode: Op.STAT, dataLength: SD_STAT_SIZE });
      if (!rsp) return EXIT_SYSFAIL;
      if (rsp.result !== Res.SUCCESS) {
        sdErr(`failed to get stat information: ${resultString(rsp.result)}`);
        return EXIT_FAILURE;
      }
      const b = Buffer.alloc(SD_STAT_SIZE);
      rsp.data.copy(b);
      const v = (i: number) => b.readBigUInt64LE(8 * i);
      return {
        gwayActive: v(0),
        peerActive: v(1),
        gwayTotal: v(2),
        peerTotal: v(3),
        gwayRx: v(4),
        gwayTx: v(5),
        peerRx: v(6),
        peerTx: v(7),
        gwayRemove: v(8),
        gwayRead: v(9),
        gwayWrite: v(10),
        gwayFlush: v(11),
        peerRemove: v(12),
        peerRead: v(13),
        peerWrite: v(14),
      };
    };
    let first = true;
    let last: Exclude<Awaited<ReturnType<typeof read>>, number> | null = null;
    for (;;) {
      const s = await read();
      if (typeof s === 'number') return s;
      if (!d.watch) {
        out(
          `${ctx.raw ? '' : 'Request\tActive\tTotal\tWrite\tRead\tRemove\tFlush\tAll WR\tAll RD\nClient\t'}` +
            `${s.gwayActive}\t${s.gwayTotal}\t${s.gwayRead}\t${s.gwayWrite}\t${s.gwayRemove}\t${s.gwayFlush}\t${ctx.strnumber(s.gwayRx)}\t${ctx.strnumber(s.gwayTx)}\n`,
        );
        out(
          `${ctx.raw ? '' : 'Peer\t'}${s.peerActive}\t${s.peerTotal}\t${s.peerRead}\t${s.peerWrite}\t${s.peerRemove}\t0\t` +
            `${ctx.strnumber(s.peerRx)}\t${ctx.strnumber(s.peerTx)}\n`,
        );
        return EXIT_SUCCESS;
      }
      if (first) {
        last = s;
        first = false;
      }
      const l = last!;
      out(
        `${ctx.raw ? '' : 'Request\tActive\tTotal\tWrite\tRead\tRemove\tFlush\tAll WR\tAll RD\tWRBW\tRDBW\tRPS\nClient\t'}` +
          `${s.gwayActive}\t${s.gwayTotal}\t${s.gwayWrite}\t${s.gwayRead}\t${s.gwayRemove}\t${s.gwayFlush}\t` +
          `${ctx.strnumber(s.gwayRx)}\t${ctx.strnumber(s.gwayTx)}\t${ctx.strnumber(s.gwayRx - l.gwayRx)}\t${ctx.strnumber(s.gwayTx - l.gwayTx)}\t` +
          `${strnumberRaw(s.gwayTotal - l.gwayTotal, true)}\n`,
      );
      out(
        `${ctx.raw ? '' : 'Peer\t'}${s.peerActive}\t${s.peerTotal}\t${s.peerWrite}\t${s.peerRead}\t${s.peerRemove}\t0\t` +
          `${ctx.strnumber(s.peerRx)}\t${ctx.strnumber(s.peerTx)}\t${ctx.strnumber(s.peerRx - l.peerRx)}\t${ctx.strnumber(s.peerTx - l.peerTx)}\t` +
          `${strnumberRaw(s.peerTotal - l.peerTotal, true)}\n`,
      );
      last = s;
      await sleep(1000);
    }
  }

  async function nodeMdInfo(ctx: RunContext, nid: { addr: string; port: number }): Promise<number> {
    const rsp = await ctx.exec({ opcode: Op.MD_INFO, dataLength: SD_MD_INFO_SIZE }, undefined, nid);
    if (!rsp) return EXIT_SYSFAIL;
    if (rsp.result !== Res.SUCCESS) {
      sdErr(`failed to get multi-disk information: ${resultString(rsp.result)}`);
      return EXIT_FAILURE;
    }
    const b = Buffer.alloc(SD_MD_INFO_SIZE);
    rsp.data.copy(b);
    for (const disk of decodeMdInfo(b)) {
      const size = disk.free + disk.used;
      const r = ratio(disk.used, size);
      if (ctx.raw)
        out(`${formatAddrPort(nid.addr, nid.port)} ${disk.idx} ${ctx.strnumber(size)} ${ctx.strnumber(disk.used)} ${ctx.strnumber(disk.free)} ${r}% ${disk.path}\n`);
      else out(`${padL(disk.idx, 2)}\t${ctx.strnumber(size)}\t${ctx.strnumber(disk.used)}\t${ctx.strnumber(disk.free)}\t${padL(r, 3)}%\t${disk.path}\n`);
    }
    return EXIT_SUCCESS;
  }

  async function mdInfo(ctx: RunContext): Promise<number> {
    if (!ctx.raw) out('Id\tSize\tUsed\tAvail\tUse%\tPath\n');
    if (!d.allNodes) return nodeMdInfo(ctx, ctx.sdNid);
    let i = 0;
    for (const n of ctx.nodes) {
      if (!ctx.raw) out(`Node ${i++}:\n`);
      const ret = await nodeMdInfo(ctx, n.nid);
      if (ret !== EXIT_SUCCESS) return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  }

  async function plugUnplug(ctx: RunContext, disks: string, plug: boolean): Promise<number> {
    if (disks.split(',').every((p) => p === '')) {
      sdErr("Empty path isn't allowed");
      return EXIT_FAILURE;
    }
    // The sheep resolves paths in its own working directory, which the user cannot see: ask for absolute ones.
    const relative = disks.split(',').find((p) => p !== '' && !p.startsWith('/'));
    if (relative !== undefined) {
      sdErr(`Invalid path '${relative}': disk paths must be absolute`);
      return EXIT_FAILURE;
    }
    const payload = Buffer.concat([Buffer.from(disks, 'utf8'), Buffer.alloc(1)]);
    const rsp = await ctx.exec({ opcode: plug ? Op.MD_PLUG : Op.MD_UNPLUG, flags: Flag.CMD_WRITE }, payload);
    if (!rsp) return EXIT_SYSFAIL;
    if (rsp.result !== Res.SUCCESS) {
      sdErr('Failed to execute request, look for sheep.log for more information');
      return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  }

  const mdCmd: Subcommand[] = [
    { name: 'info', desc: 'show multi-disk information', flags: CMD_NEED_NODELIST, fn: mdInfo },
    {
      name: 'plug',
      desc: 'plug more disk(s) into node',
      flags: CMD_NEED_ARG,
      fn: async (ctx, argv) => {
        if (!d.force) await ctx.confirm(MD_PLUG_PRINT);
        return plugUnplug(ctx, argv.cur!, true);
      },
    },
    {
      name: 'unplug',
      desc: 'unplug disk(s) from node',
      flags: CMD_NEED_ARG,
      fn: async (ctx, argv) => {
        if (!d.force) await ctx.confirm(MD_UNPLUG_PRINT);
        return plugUnplug(ctx, argv.cur!, false);
      },
    },
  ];

  const dumpLoglevels = (err: boolean) => {
    LOGLEVELS.forEach((l, i) => (err ? sdErr(`${l}\t(${i})`) : sdInfo(`${l}\t(${i})`)));
  };

  const logLevelCmd: Subcommand[] = [
    {
      name: 'set',
      arg: '<log level>',
      desc: 'set new loglevel',
      flags: CMD_NEED_ARG,
      fn: async (ctx, argv) => {
        const str = argv.cur!;
        const level = LOGLEVELS.indexOf(str);
        if (level < 0) {
          sdErr(`invalid loglevel: ${str}`);
          sdErr('available loglevels:');
          dumpLoglevels(true);
          return -1;
        }
        const b = Buffer.alloc(4);
        b.writeInt32LE(level);
        const rsp = await execOk(ctx, { opcode: Op.SET_LOGLEVEL, flags: Flag.CMD_WRITE }, b);
        if (!rsp) return -1;
        return EXIT_SUCCESS;
      },
    },
    {
      name: 'get',
      desc: 'get current loglevel',
      flags: 0,
      fn: async (ctx) => {
        const rsp = await execOk(ctx, { opcode: Op.GET_LOGLEVEL, dataLength: 4 });
        if (!rsp) return -1;
        const level = rsp.data.length >= 4 ? rsp.data.readInt32LE(0) : -1;
        sdInfo(`${LOGLEVELS[level] ?? 'unknown loglevel'} (${level})`);
        return EXIT_SUCCESS;
      },
    },
    {
      name: 'list',
      desc: 'list available loglevels',
      flags: 0,
      fn: async () => {
        dumpLoglevels(false);
        return EXIT_SUCCESS;
      },
    },
  ];

  const logCmd: Subcommand[] = [
    {
      name: 'level',
      arg: '<subcommand>',
      desc: 'manipulate loglevel',
      sub: logLevelCmd,
      flags: CMD_NEED_ARG,
      fn: (ctx, argv) => doGenericSubcommand(logLevelCmd, ctx, argv),
    },
  ];

  const vnodesCmd: Subcommand[] = [
    {
      name: 'set',
      arg: '<num of vnodes>',
      desc: 'set new vnodes',
      flags: CMD_NEED_ARG,
      fn: async (ctx, argv) => {
        const str = argv.cur!;
        // str_to_u16(): strtoll over the whole string, in 0..65535; dog refuses 0 as well
        const p = strtol(str);
        if (p.end === 0 || p.end !== str.length || p.value < 1 || p.value > 65535) {
          sdErr(`Invalid number of vnodes '${str}': must be an integer between 1 and 65535`);
          exit(EXIT_USAGE);
        }
        // dog sends sizeof(nr_vnodes), nr_vnodes being an int *: the int, then 4 more bytes
        const b = Buffer.alloc(8);
        b.writeInt32LE(p.value, 0);
        const rsp = await execOk(ctx, { opcode: Op.SET_VNODES, flags: Flag.CMD_WRITE }, b);
        if (!rsp) return -1;
        return EXIT_SUCCESS;
      },
    },
  ];

  const sub: Subcommand[] = [
    { name: 'kill', arg: '<node id>', opts: 'aprhlT', desc: 'kill node', flags: CMD_NEED_NODELIST, fn: nodeKill, options: NODE_OPTIONS },
    { name: 'list', opts: 'aprhT', desc: 'list nodes', flags: CMD_NEED_NODELIST, fn: nodeList },
    { name: 'info', opts: 'aprhT', desc: 'show information about each node', flags: CMD_NEED_NODELIST, fn: nodeInfo },
    {
      name: 'recovery',
      arg: '<max> <interval>',
      opts: 'aphPrT',
      desc: 'show recovery information or set/get recovery speed throttling of nodes',
      sub: recoveryCmd,
      flags: 0,
      fn: nodeRecovery,
      options: NODE_OPTIONS,
    },
    {
      name: 'md',
      arg: '[disks]',
      opts: 'aprAfhT',
      desc: "See 'dog node md' for more information",
      sub: mdCmd,
      flags: CMD_NEED_ARG,
      fn: (ctx, argv) => doGenericSubcommand(mdCmd, ctx, argv),
      options: NODE_OPTIONS,
    },
    { name: 'stat', opts: 'aprwhT', desc: 'show stat information about the node', flags: 0, fn: nodeStat, options: NODE_OPTIONS },
    {
      name: 'log',
      opts: 'aphT',
      desc: 'show or set log level of the node',
      sub: logCmd,
      flags: CMD_NEED_ARG,
      fn: (ctx, argv) => doGenericSubcommand(logCmd, ctx, argv),
    },
    {
      name: 'vnodes',
      arg: '<num of vnodes>',
      opts: 'aph',
      desc: 'set new vnodes',
      sub: vnodesCmd,
      flags: CMD_NEED_ARG,
      fn: (ctx, argv) => doGenericSubcommand(vnodesCmd, ctx, argv),
    },
  ];

  function parser(ch: string): void {
    switch (ch) {
      case 'A':
        d.allNodes = true;
        break;
      case 'P':
        d.recoveryProgress = true;
        break;
      case 'w':
        d.watch = true;
        break;
      case 'l':
        d.local = true;
        break;
      case 'f':
        d.force = true;
        break;
    }
  }

  return { name: 'node', sub, parser };
}
