// dog's main(): command lookup (setup_commands), option parsing with getopt_long semantics,
// SHEEPDOG_DOG_ADDR / SHEEPDOG_DOG_PORT, the start-up node list, usage texts and exit codes.

import { addrToBytes, bytesToAddr } from '../../proto/structs.js';
import { clusterCommand } from './cluster.js';
import {
  Argv,
  CMD_NEED_ARG,
  CMD_NEED_NODELIST,
  subcommandUsage,
  type Command,
  type RunContext,
  type SdOption,
  type Subcommand,
} from './command.js';
import { DogExit, EXIT_FAILURE, EXIT_SUCCESS, EXIT_SYSFAIL, EXIT_USAGE, cFixed, exit, getSink, isNumeric, out, padR, sdErr, strtol } from './common.js';
import { DogContext } from './ctx.js';
import { getoptLong, type OptSpec } from './getopt.js';
import { nodeCommand } from './node.js';
import { vdiCommand } from './vdi.js';
import { vmCommand } from './vm.js';

export const PACKAGE_VERSION = '1.0.1';

/** Options common to all dog commands (dog_options[]). 'j' is accepted but never advertised. */
export const DOG_OPTIONS: SdOption[] = [
  { ch: 'a', name: 'address', hasArg: true, desc: 'specify the daemon address (default: localhost)' },
  { ch: 'p', name: 'port', hasArg: true, desc: 'specify the daemon port' },
  {
    ch: 'r',
    name: 'raw',
    hasArg: false,
    desc: 'raw output mode: omit headers, separate fields with\n                          single spaces and print all sizes in decimal bytes',
  },
  { ch: 'v', name: 'verbose', hasArg: false, desc: 'print more information than default' },
  { ch: 'h', name: 'help', hasArg: false, desc: 'display this help and exit' },
  { ch: 'T', name: 'time', hasArg: false, desc: 'show elapsed time' },
];

const JSON_OPTION: SdOption = { ch: 'j', name: 'json', hasArg: false, desc: 'output in json format' };

/** inet_pton-style check used for -a and SHEEPDOG_DOG_ADDR (str_to_addr: no host names). */
export function strToAddr(s: string): string | null {
  try {
    const b = addrToBytes(s);
    return bytesToAddr(b);
  } catch {
    return null;
  }
}

class RunCtx extends DogContext implements RunContext {
  cmd = '';
  subcmd = '';
  commandOpts = '';
  commandArg: string | undefined;
  commandOptions: SdOption[] = [];
  subcmdStack: Subcommand[] = [];
  connectFailures: string[] = [];

  constructor(readonly commands: Command[]) {
    super();
  }

  findSubcmd(cmd: string, subcmd: string): Subcommand | undefined {
    return this.commands.find((c) => c.name === cmd)?.sub.find((s) => s.name === subcmd);
  }

  findOpt(ch: string): SdOption {
    const o = DOG_OPTIONS.find((x) => x.ch === ch) ?? this.commandOptions.find((x) => x.ch === ch);
    if (!o) {
      sdErr('Internal error');
      exit(EXIT_SYSFAIL);
    }
    return o;
  }
}

export function buildCommands(): Command[] {
  return [vdiCommand(), nodeCommand(), clusterCommand(), vmCommand()];
}

/** usage(commands, status) */
function usage(commands: Command[], status: number): never {
  if (status) sdErr("Try 'dog --help' for more information.");
  else {
    let s = `Sheepdog administrator utility (version ${PACKAGE_VERSION})\n`;
    s += 'Usage: dog <command> <subcommand> [options]\n';
    s += '\nAvailable commands:\n';
    for (const c of commands) for (const sc of c.sub) s += `  ${padR(`${c.name} ${sc.name}`, 24)}${sc.desc}\n`;
    s += '\n';
    s += "For more information, run 'dog <command> <subcommand> --help'.\n";
    out(s);
  }
  exit(status);
}

function hint(ctx: DogContext, env: NodeJS.ProcessEnv): void {
  if (!(getSink().stderrIsTTY() || env.SHEEPDOG_DOG_HINT === '1')) return;
  const where = `${ctx.sdNid.addr}:${ctx.sdNid.port}`;
  sdErr(
    `hint: no sheep answered at ${where}. Start sheep there, or point dog at a running node ` +
      'with -a <address> -p <port> (or SHEEPDOG_DOG_ADDR / SHEEPDOG_DOG_PORT).',
  );
}

/**
 * Runs dog with argv = the arguments after the program name. Resolves to the exit status;
 * output goes to the current sink (process stdout/stderr by default).
 */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const commands = buildCommands();
  const ctx = new RunCtx(commands);
  const started = process.hrtime.bigint();
  try {
    if (argv.length < 1) usage(commands, 0);
    const cmd = argv[0]!;
    const subcmd = argv[1];

    // setup_commands()
    const command = commands.find((c) => c.name === cmd);
    if (!command) {
      if (cmd !== 'help' && cmd !== '--help' && cmd !== '-h') {
        sdErr(`Invalid command '${cmd}'`);
        usage(commands, EXIT_USAGE);
      }
      usage(commands, 0);
    }
    const sub = subcmd === undefined ? undefined : command.sub.find((s) => s.name === subcmd);
    if (!sub) {
      if (subcmd !== undefined && subcmd !== 'help' && subcmd !== '--help' && subcmd !== '-h')
        sdErr(`Invalid command '${cmd} ${subcmd}'`);
      sdErr(`Available ${cmd} commands:`);
      for (const s of command.sub) sdErr(`  ${cmd} ${s.name}`);
      exit(EXIT_USAGE);
    }
    ctx.cmd = cmd;
    ctx.subcmd = subcmd!;
    ctx.commandOpts = sub.opts ?? '';
    ctx.commandArg = sub.arg;
    ctx.commandOptions = sub.options ?? [];
    const flags = sub.flags;

    const specs: OptSpec[] = [];
    for (const ch of ctx.commandOpts) {
      const o = ctx.findOpt(ch);
      specs.push({ ch: o.ch, name: o.name, hasArg: o.hasArg });
    }
    if (!specs.some((s) => s.ch === 'j')) specs.push({ ch: 'j', name: JSON_OPTION.name, hasArg: false });

    const envAddr = env.SHEEPDOG_DOG_ADDR;
    if (envAddr !== undefined) {
      const a = strToAddr(envAddr);
      if (a === null) {
        sdErr(`Invalid ip address ${envAddr}`);
        return EXIT_FAILURE;
      }
      ctx.sdNid = { addr: a, port: ctx.sdNid.port };
    }
    const envPort = env.SHEEPDOG_DOG_PORT;
    if (envPort !== undefined) {
      const p = strtol(envPort);
      if (p.end === 0 || p.value < 1 || p.value > 65535 || !isNumeric(envPort)) {
        sdErr(`Invalid port number '${envPort}'`);
        exit(EXIT_USAGE);
      }
      ctx.sdNid = { addr: ctx.sdNid.addr, port: p.value };
    }

    const { events, positionals } = getoptLong(argv.slice(2), specs);
    for (const ev of events) {
      if (ev.kind === 'error') {
        getSink().err(ev.message);
        usage(commands, EXIT_USAGE);
      }
      const optarg = ev.arg;
      switch (ev.ch) {
        case 'a': {
          const a = strToAddr(optarg!);
          if (a === null) {
            sdErr(`Invalid ip address ${optarg}`);
            return EXIT_FAILURE;
          }
          ctx.sdNid = { addr: a, port: ctx.sdNid.port };
          break;
        }
        case 'j':
          ctx.json = true;
          break;
        case 'p': {
          const p = strtol(optarg!);
          if (p.end === 0 || p.value < 1 || p.value > 65535 || !isNumeric(optarg!)) {
            sdErr(`Invalid port number '${optarg}'`);
            exit(EXIT_USAGE);
          }
          ctx.sdNid = { addr: ctx.sdNid.addr, port: p.value };
          break;
        }
        case 'r':
          ctx.raw = true;
          break;
        case 'v':
          ctx.verbose = true;
          break;
        case 'h':
          subcommandUsage(ctx, EXIT_SUCCESS);
          break;
        case 'T':
          ctx.elapsed = true;
          break;
        default:
          if (command.parser) command.parser(ev.ch, optarg);
          else usage(commands, EXIT_USAGE);
      }
    }

    if (ctx.raw && ctx.json) usage(commands, EXIT_USAGE);
    if (!getSink().stdoutIsTTY() || ctx.raw || ctx.json) ctx.highlight = false;

    if (flags & CMD_NEED_NODELIST) {
      const ret = await ctx.updateNodeList();
      if (ret < 0) {
        sdErr('Failed to get node list');
        exit(EXIT_SYSFAIL);
      }
    }

    const args = new Argv(positionals);
    if (flags & CMD_NEED_ARG && args.atEnd) subcommandUsage(ctx, EXIT_USAGE);

    const ret = await sub.fn(ctx, args);
    if (ret === EXIT_USAGE) subcommandUsage(ctx, EXIT_USAGE);
    if (ctx.elapsed) {
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      out(`\nElapsed time: ${cFixed(secs, 3)} seconds\n`);
    }
    return ret & 0xff;
  } catch (e) {
    if (e instanceof DogExit) return e.code & 0xff;
    sdErr(`dog exits unexpectedly (${(e as Error)?.message ?? String(e)}).`);
    return EXIT_SYSFAIL;
  } finally {
    if (ctx.connectFailed) hint(ctx, env);
    ctx.close();
  }
}

export type { Command, Subcommand };
export { CMD_NEED_ARG, CMD_NEED_NODELIST };
