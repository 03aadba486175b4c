// `dog cluster ...` (dog/cluster.c): format, info, shutdown, recover, reweight, alter-copy.

import {
  CLUSTER_INFO_SIZE,
  ClusterFlag,
  EPOCH_LOG_HEADER_SIZE,
  Flag,
  Op,
  Res,
  SD_DEFAULT_COPIES,
  SD_MAX_NODES,
  SD_NODE_SIZE,
  SD_VDI_BITMAP_SIZE,
  STORE_LEN,
  resultString,
} from '../../proto/constants.js';
import { decodeEpochLog, formatAddrPort, readCString, type EpochLog } from '../../proto/structs.js';
import {
  CMD_NEED_ARG,
  CMD_NEED_NODELIST,
  doGenericSubcommand,
  type Command,
  type RunContext,
  type SdOption,
  type Subcommand,
} from './command.js';
import {
  COPY_ERROR,
  EXIT_FAILURE,
  EXIT_SUCCESS,
  EXIT_SYSFAIL,
  EXIT_USAGE,
  atoi,
  ctime,
  ecPolicyToDp,
  exit,
  out,
  padL,
  parseCopy,
  sdErr,
  sdInfo,
  strftime,
} from './common.js';
import { clusterCheck } from './check.js';

export const CLUSTER_OPTIONS: SdOption[] = [
  { ch: 'b', name: 'store', hasArg: true, desc: 'specify backend store' },
  { ch: 'c', name: 'copies', hasArg: true, desc: 'specify the default data redundancy (number of copies)' },
  { ch: 'f', name: 'force', hasArg: false, desc: 'do not prompt for confirmation' },
  { ch: 'F', name: 'avoid-diskfull', hasArg: false, desc: 'skip recovery if recovery process can cause disk full' },
  { ch: 'l', name: 'lock', hasArg: false, desc: 'Lock vdi to exclude multiple users' },
  { ch: 'm', name: 'multithread', hasArg: false, desc: "use multi-thread for 'cluster snapshot save'" },
  { ch: 'R', name: 'recyclevid', hasArg: false, desc: 'enable recycling of VID' },
  { ch: 't', name: 'strict', hasArg: false, desc: 'do not serve write request if number of nodes is not sufficient' },
  { ch: 'z', name: 'block_size_shift', hasArg: true, desc: 'specify the shift num of default data object size' },
  { ch: 'V', name: 'fixedvnodes', hasArg: false, desc: 'disable automatic vnodes calculation' },
];

const DEFAULT_STORE = 'plain';

const FORMAT_PRINT =
  '    __\n' +
  "   ()'`;\n" +
  '   /\\|`\n' +
  '  /  |   Caution! The cluster is not empty.\n' +
  '(/_)_|_  Are you sure you want to continue? [yes/no]: ';

const RECOVER_PRINT =
  'Caution! Please try starting all the cluster nodes normally before\n' +
  'running this command.\n\n' +
  'The cluster may need to be force recovered if:\n' +
  '  - the master node fails to start because of epoch mismatch; or\n' +
  '  - some nodes fail to start after a cluster shutdown.\n\n' +
  'Are you sure you want to continue? [yes/no]: ';

const ALTER_CLUSTER_COPY_PRINT =
  '    __\n' +
  "   ()'`;\n" +
  "   /\\|`  Caution! Changing cluster's redundancy level will affect\n" +
  '  /  |   all the VDIs to be created later.\n' +
  '(/_)_|_  Are you sure you want to continue? [yes/no]: ';

interface ClusterCmdData {
  copies: number;
  copyPolicy: number;
  multithread: boolean;
  blockSizeShift: number;
  force: boolean;
  strict: boolean;
  name: string;
  fixedVnodes: boolean;
  useLock: boolean;
  recycleVid: boolean;
  avoidDiskfull: boolean;
}

/** Decodes the STAT_CLUSTER payload: records of 48 + nodesNr×80 bytes, newest first. */
export function decodeEpochLogs(data: Buffer, nodesNr: number): EpochLog[] {
  const recLen = EPOCH_LOG_HEADER_SIZE + nodesNr * SD_NODE_SIZE;
  const n = recLen > 0 ? Math.floor(data.length / recLen) : 0;
  const res: EpochLog[] = [];
  for (let i = 0; i < n; i++) {
    const rec = data.subarray(i * recLen, (i + 1) * recLen);
    // nr_nodes may not exceed the slots of the record
    const nr = Math.min(rec.readUInt32LE(20), nodesNr);
    const copy = Buffer.from(rec);
    copy.writeUInt32LE(nr, 20);
    res.push(decodeEpochLog(copy));
  }
  return res;
}

/** One epoch line of `dog cluster info` (without the trailing newline). */
export function formatEpochLine(log: EpochLog, raw: boolean): string {
  const time = raw ? log.time.toString() : strftime('%Y-%m-%d %H:%M:%S', log.time);
  const nodes = log.nodes.map((n) => `${formatAddrPort(n.nid.addr, n.nid.port)}:${n.nrVnodes}`).join(', ');
  return `${time} ${raw ? String(log.epoch) : padL(log.epoch, 6)} [${nodes}]`;
}

export function clusterCommand(): Command {
  const d: ClusterCmdData = {
    copies: 0,
    copyPolicy: 0,
    multithread: false,
    blockSizeShift: 0,
    force: false,
    strict: false,
    name: '',
    fixedVnodes: false,
    useLock: false,
    recycleVid: false,
    avoidDiskfull: false,
  };

  async function listStore(ctx: RunContext): Promise<number> {
    const rsp = await ctx.exec({ opcode: Op.GET_STORE_LIST, dataLength: 512 });
    if (!rsp) return EXIT_SYSFAIL;
    if (rsp.result !== Res.SUCCESS) {
      sdErr(`Restore failed: ${resultString(rsp.result)}`);
      return EXIT_FAILURE;
    }
    const text = readCString(rsp.data, 0, Math.min(512, rsp.data.length));
    out('Available stores:\n');
    out('---------------------------------------\n');
    out(`${text}\n`);
    return EXIT_SYSFAIL;
  }

  async function clusterFormat(ctx: RunContext): Promise<number> {
    for (const n of ctx.nodes) {
      const rsp = await ctx.exec({ opcode: Op.CLUSTER_INFO, dataLength: CLUSTER_INFO_SIZE }, undefined, n.nid);
      if (!rsp) {
        sdErr('Fail to execute request');
        return EXIT_FAILURE;
      }
      if (rsp.result !== Res.SUCCESS) {
        sdErr(resultString(rsp.result));
        return EXIT_FAILURE;
      }
      const flags = rsp.data.length >= 18 ? rsp.data.readUInt16LE(16) : 0;
      if (n.nrVnodes !== 0) {
        if (flags & ClusterFlag.AUTO_VNODES && d.fixedVnodes) {
          sdErr("Can not apply the option of '-V', because there are vnode strategy of sheep is auto in the cluster");
          return EXIT_FAILURE;
        } else if (!(flags & ClusterFlag.AUTO_VNODES) && !d.fixedVnodes) {
          sdErr("Need to specify the option of '-V', because there are vnode strategy of sheep is fixed in the cluster");
          return EXIT_FAILURE;
        }
      }
    }

    if (d.copies > ctx.nodesNr) {
      await ctx.confirm(
        `Number of copies (${d.copies}) is larger than number of nodes (${ctx.nodesNr}).\n` +
          'Are you sure you want to continue? [yes/no]: ',
      );
    }

    const vdis = await ctx.exec({ opcode: Op.READ_VDIS, dataLength: SD_VDI_BITMAP_SIZE });
    if (!vdis) return EXIT_SYSFAIL;
    if (vdis.result !== Res.SUCCESS) {
      sdErr(resultString(vdis.result));
      return EXIT_FAILURE;
    }
    const empty = !vdis.data.some((b) => b !== 0);
    if (!empty && !d.force) await ctx.confirm(FORMAT_PRINT);

    const now = Date.now();
    const sec = BigInt(Math.floor(now / 1000));
    const usec = BigInt((now % 1000) * 1000);
    const storeName = (d.name.length ? d.name : DEFAULT_STORE).slice(0, STORE_LEN - 1);
    let flags = 0;
    if (d.strict) flags |= ClusterFlag.STRICT;
    if (d.useLock) flags |= ClusterFlag.USE_LOCK;
    if (d.recycleVid) flags |= ClusterFlag.RECYCLE_VID;
    if (d.fixedVnodes) flags &= ~ClusterFlag.AUTO_VNODES;
    else flags |= ClusterFlag.AUTO_VNODES;
    if (d.avoidDiskfull) flags |= ClusterFlag.AVOID_DISKFULL;

    out(`using backend ${storeName} store\n`);
    const payload = Buffer.concat([Buffer.from(storeName, 'utf8'), Buffer.alloc(1)]);
    const rsp = await ctx.exec(
      {
        opcode: Op.MAKE_FS,
        flags: Flag.CMD_WRITE,
        cluster: {
          copies: d.copies,
          copyPolicy: d.copyPolicy,
          blockSizeShift: d.blockSizeShift,
          ctime: (sec << 32n) | (usec * 1000n),
          flags,
        },
      },
      payload,
    );
    if (!rsp) return EXIT_SYSFAIL;
    if (rsp.result !== Res.SUCCESS) {
      sdErr(`Format failed: ${resultString(rsp.result)}`);
      if (rsp.result === Res.NO_STORE) return listStore(ctx);
      return EXIT_SYSFAIL;
    }
    return EXIT_SUCCESS;
  }

  async function clusterInfo(ctx: RunContext): Promise<number> {
    let nodesNr = ctx.nodesNr;
    let rsp;
    for (let tries = 0; ; tries++) {
      const logLength = ctx.epoch * (EPOCH_LOG_HEADER_SIZE + nodesNr * SD_NODE_SIZE);
      rsp = await ctx.exec({ opcode: Op.STAT_CLUSTER, dataLength: logLength, cluster: { nodesNr } });
      if (!rsp) return EXIT_SYSFAIL;
      if (rsp.result === Res.BUFFER_SMALL && tries < 16) {
        nodesNr = Math.max(1, nodesNr) * 2;
        continue;
      }
      break;
    }
    const ok = rsp.result === Res.SUCCESS;
    const logs = decodeEpochLogs(rsp.data, nodesNr);
    const head = logs[0];
    const disableRecovery = head?.disableRecovery ?? false;
    const headFlags = head?.flags ?? 0;

    if (ctx.json) {
      const doc: Record<string, unknown> = { status: ok ? 'running' : resultString(rsp.result) };
      if (ok) {
        doc.auto_recovery = !disableRecovery;
        const copy = head && head.copyPolicy ? `${ecPolicyToDp(head.copyPolicy).d}:${ecPolicyToDp(head.copyPolicy).p}` : String(head?.nrCopies ?? 0);
        doc.store = { driver: head?.drvName ?? '', redundancy: copy };
      }
      doc.vnode_strategy = headFlags & ClusterFlag.AUTO_VNODES ? 'auto' : 'fixed';
      doc.vnode_mode = headFlags & ClusterFlag.DISKMODE ? 'disk' : 'node';
      if (logs.length > 0) {
        doc.created_at = Number(logs[0]!.ctime >> 32n);
        doc.creation_time = strftime('%Y-%m-%d %H:%M:%S', logs[0]!.ctime >> 32n);
      }
      doc.epochs = logs.map((l) => ({
        epoch: l.epoch,
        time: Number(l.time),
        nodes: l.nodes.map((n) => ({ host: n.nid.addr, port: n.nid.port, vnodes: n.nrVnodes, zone: n.zone })),
      }));
      out(JSON.stringify(doc) + '\n');
      return EXIT_SUCCESS;
    }

    if (!ctx.raw) out('Cluster status: ');
    if (ok) out(`running, auto-recovery ${disableRecovery ? 'disabled' : 'enabled'}\n`);
    else out(`${resultString(rsp.result)}\n`);

    if (ctx.verbose) {
      if (!ctx.raw) out('Cluster store: ');
      if (ok) {
        const copy =
          head && head.copyPolicy
            ? `${ecPolicyToDp(head.copyPolicy).d}:${ecPolicyToDp(head.copyPolicy).p}`
            : String(head?.nrCopies ?? 0);
        out(`${head?.drvName ?? ''} with ${copy} redundancy policy\n`);
        if (!ctx.raw) out('Cluster vnodes strategy: ');
        out(headFlags & ClusterFlag.AUTO_VNODES ? 'auto\n' : 'fixed\n');
      } else out(`${resultString(rsp.result)}\n`);
      if (!ctx.raw) out('Cluster vnode mode: ');
      out(headFlags & ClusterFlag.DISKMODE ? 'disk\n' : 'node\n');
    } else out('\n');

    if (!ctx.raw && rsp.data.length > 0 && logs.length > 0) {
      out(`Cluster created at ${ctime(logs[0]!.ctime >> 32n)}\n`);
      out('Epoch Time           Version [Host:Port:V-Nodes,,,]\n');
    }
    for (const l of logs) out(formatEpochLine(l, ctx.raw) + '\n');
    return EXIT_SUCCESS;
  }

  async function clusterShutdown(ctx: RunContext): Promise<number> {
    const { ret } = await ctx.sendLightReq({ opcode: Op.SHUTDOWN });
    if (ret) {
      sdErr('failed to execute request');
      return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  }

  async function forceRecover(ctx: RunContext): Promise<number> {
    if (!d.force) await ctx.confirm(RECOVER_PRINT);
    const rsp = await ctx.exec({ opcode: Op.FORCE_RECOVER, dataLength: SD_MAX_NODES * SD_NODE_SIZE });
    if (!rsp) return EXIT_SYSFAIL;
    if (rsp.result !== Res.SUCCESS) {
      sdErr(`failed to execute request, ${resultString(rsp.result)}`);
      return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  }

  async function disableRecover(ctx: RunContext): Promise<number> {
    const { ret } = await ctx.sendLightReq({ opcode: Op.DISABLE_RECOVER });
    if (ret) return EXIT_FAILURE;
    out('Cluster recovery: disable\n');
    return EXIT_SUCCESS;
  }

  async function enableRecover(ctx: RunContext): Promise<number> {
    const { ret } = await ctx.sendLightReq({ opcode: Op.ENABLE_RECOVER });
    if (ret) return EXIT_FAILURE;
    out('Cluster recovery: enable\n');
    return EXIT_SUCCESS;
  }

  const recoverCmd: Subcommand[] = [
    { name: 'force', desc: 'force recover cluster immediately', flags: 0, fn: forceRecover },
    { name: 'enable', desc: 'enable automatic recovery and run once recover if necessary', flags: 0, fn: enableRecover },
    { name: 'disable', desc: 'disable automatic recovery', flags: 0, fn: disableRecover },
  ];

  const unsupported = (what: string) => async (): Promise<number> => {
    sdErr(`'dog cluster ${what}' is not supported by this dog (sheep-actors)`);
    return EXIT_FAILURE;
  };

  const snapshotCmd: Subcommand[] = [
    { name: 'save', opts: 'h', desc: 'save snapshot to localpath', flags: CMD_NEED_ARG | CMD_NEED_NODELIST, fn: unsupported('snapshot save') },
    { name: 'list', opts: 'h', desc: 'list snapshot of localpath', flags: CMD_NEED_ARG, fn: unsupported('snapshot list') },
    { name: 'load', opts: 'h', desc: 'load snapshot from localpath', flags: CMD_NEED_ARG | CMD_NEED_NODELIST, fn: unsupported('snapshot load') },
    { name: 'show', opts: 'h', desc: 'show vdi list from snapshot', flags: CMD_NEED_ARG | CMD_NEED_NODELIST, fn: unsupported('snapshot show') },
  ];

  async function clusterReweight(ctx: RunContext): Promise<number> {
    const { ret } = await ctx.sendLightReq({ opcode: Op.REWEIGHT });
    return ret ? EXIT_FAILURE : EXIT_SUCCESS;
  }

  async function clusterAlterCopy(ctx: RunContext): Promise<number> {
    if (d.copyPolicy !== 0) {
      sdErr('Changing redundancy level of erasure coded vdi is not supported yet.');
      return EXIT_USAGE;
    }
    if (!d.copies) {
      d.copies = SD_DEFAULT_COPIES;
      out(`The cluster's redundancy level is not specified, use ${SD_DEFAULT_COPIES} as default.\n`);
    }
    if (d.copies > ctx.nodesNr) {
      await ctx.confirm(
        `Number of copies (${d.copies}) is larger than number of nodes (${ctx.nodesNr}).\n` +
          'Are you sure you want to continue? [yes/no]: ',
      );
    }
    const rsp = await ctx.exec({ opcode: Op.STAT_CLUSTER, dataLength: EPOCH_LOG_HEADER_SIZE });
    if (!rsp) return EXIT_FAILURE;
    if (rsp.result !== Res.SUCCESS) {
      sdErr(`Response's result: ${resultString(rsp.result)}`);
      return EXIT_FAILURE;
    }
    const copyPolicy = rsp.data.length > 26 ? rsp.data[26]! : 0;
    const nrCopies = rsp.data.length > 25 ? rsp.data[25]! : 0;
    if (copyPolicy) {
      sdErr("The cluster's copy policy is erasure code, changing it is not supported yet.");
      return EXIT_FAILURE;
    }
    if (nrCopies === d.copies) {
      sdErr(`The cluster's redundancy level is already set to ${d.copies}, nothing changed.`);
      return EXIT_FAILURE;
    }
    await ctx.confirm(ALTER_CLUSTER_COPY_PRINT);
    const { ret } = await ctx.sendLightReq({ opcode: Op.ALTER_CLUSTER_COPY, cluster: { copies: d.copies, copyPolicy: d.copyPolicy } });
    if (ret === 0) {
      sdInfo(`The cluster's redundancy level is set to ${d.copies}, the old one was ${nrCopies}.`);
      return EXIT_SUCCESS;
    }
    sdErr("Changing the cluster's redundancy level failure.");
    return EXIT_FAILURE;
  }

  const sub: Subcommand[] = [
    { name: 'info', opts: 'aprhvT', desc: 'show cluster information', flags: CMD_NEED_NODELIST, fn: clusterInfo, options: CLUSTER_OPTIONS },
    { name: 'format', opts: 'bcltaphzTVRfF', desc: 'create a Sheepdog store', flags: CMD_NEED_NODELIST, fn: clusterFormat, options: CLUSTER_OPTIONS },
    { name: 'shutdown', opts: 'aphT', desc: 'stop Sheepdog', flags: 0, fn: clusterShutdown, options: CLUSTER_OPTIONS },
    {
      name: 'snapshot',
      arg: '<tag|idx> <path> [vdi1] [vdi2] ...',
      opts: 'aphTm',
      desc: 'snapshot/restore the cluster',
      sub: snapshotCmd,
      flags: CMD_NEED_ARG,
      fn: (ctx, argv) => doGenericSubcommand(snapshotCmd, ctx, argv),
      options: CLUSTER_OPTIONS,
    },
    {
      name: 'recover',
      opts: 'afphT',
      desc: "See 'dog cluster recover' for more information",
      sub: recoverCmd,
      flags: CMD_NEED_ARG,
      fn: (ctx, argv) => doGenericSubcommand(recoverCmd, ctx, argv),
      options: CLUSTER_OPTIONS,
    },
    { name: 'reweight', opts: 'aphT', desc: 'reweight the cluster', flags: 0, fn: clusterReweight, options: CLUSTER_OPTIONS },
    { name: 'check', opts: 'aphT', desc: 'check and repair cluster', flags: CMD_NEED_NODELIST, fn: (ctx) => clusterCheck(ctx), options: CLUSTER_OPTIONS },
    { name: 'alter-copy', opts: 'aphTc', desc: "set the cluster's redundancy level", flags: CMD_NEED_NODELIST, fn: clusterAlterCopy, options: CLUSTER_OPTIONS },
  ];

  function parser(ch: string, opt: string | undefined): void {
    switch (ch) {
      case 'b':
        d.name = Buffer.from(opt!, 'utf8').subarray(0, STORE_LEN - 1).toString('utf8');
        break;
      case 'c': {
        const r = parseCopy(opt!);
        d.copies = r.copies;
        d.copyPolicy = r.copyPolicy;
        if (!d.copies) {
          sdErr(COPY_ERROR(opt!));
          exit(EXIT_FAILURE);
        }
        break;
      }
      case 'f':
        d.force = true;
        break;
      case 'l':
        d.useLock = true;
        break;
      case 'm':
        d.multithread = true;
        d.strict = true; // upstream falls through into 't'
        break;
      case 't':
        d.strict = true;
        break;
      case 'z': {
        const bss = atoi(opt!) >>> 0;
        if (bss > 31) {
          sdErr('Object Size is limited to 2^31. Please set shift bit lower than 31');
          exit(EXIT_FAILURE);
        } else if (bss < 20) {
          sdErr('Object Size is larger than 2^20. Please set shift bit larger than 20');
          exit(EXIT_FAILURE);
        }
        d.blockSizeShift = bss;
        break;
      }
      case 'V':
        d.fixedVnodes = true;
        break;
      case 'R':
        d.recycleVid = true;
        break;
      case 'F':
        d.avoidDiskfull = true;
        break;
    }
  }

  return { name: 'cluster', sub, parser };
}
