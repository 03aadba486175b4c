// Command tables in the shape of dog.h's struct command / struct subcommand / struct sd_option,
// plus subcommand_usage() and do_generic_subcommand(), which depend only on these tables.

import { EXIT_FAILURE, EXIT_USAGE, exit, out, padR, sdErr } from './common.js';
import type { DogContext } from './ctx.js';

export const CMD_NEED_NODELIST = 1 << 0;
export const CMD_NEED_ARG = 1 << 1;

export interface SdOption {
  ch: string;
  name: string;
  hasArg: boolean;
  desc: string;
}

/** The positional arguments after option permutation, with C's optind as a cursor. */
export class Argv {
  constructor(
    readonly list: string[],
    public optind = 0,
  ) {}
  /** argv[optind] (undefined past the end) */
  get cur(): string | undefined {
    return this.list[this.optind];
  }
  /** argv[optind++] */
  next(): string | undefined {
    return this.list[this.optind++];
  }
  /** argc == optind */
  get atEnd(): boolean {
    return this.optind >= this.list.length;
  }
}

export type CommandFn = (ctx: RunContext, argv: Argv) => Promise<number>;

export interface Subcommand {
  name: string;
  arg?: string;
  opts?: string;
  desc: string;
  sub?: Subcommand[];
  flags: number;
  fn: CommandFn;
  options?: SdOption[];
}

export interface Command {
  name: string;
  sub: Subcommand[];
  /** command_parser: called for every command-specific option, in argv order */
  parser?: (ch: string, arg: string | undefined) => void;
}

/** What a subcommand sees: the connection context plus the usage information of its command. */
export interface RunContext extends DogContext {
  cmd: string;
  subcmd: string;
  commandOpts: string;
  commandArg: string | undefined;
  commandOptions: SdOption[];
  subcmdStack: Subcommand[];
  findSubcmd(cmd: string, subcmd: string): Subcommand | undefined;
  findOpt(ch: string): SdOption;
}

/** subcommand_usage(): prints the usage of the current subcommand on stdout and exits. */
export function subcommandUsage(ctx: RunContext, status: number): never {
  let s = `Usage: dog ${ctx.cmd} ${ctx.subcmd}`;
  let subsub: Subcommand[] | undefined;
  if (ctx.subcmdStack.length > 0) {
    for (const st of ctx.subcmdStack) s += ` ${st.name}`;
    subsub = ctx.subcmdStack[ctx.subcmdStack.length - 1]!.sub;
  } else {
    subsub = ctx.findSubcmd(ctx.cmd, ctx.subcmd)?.sub;
  }
  if (subsub && subsub.length) {
    if (subsub.length === 1) s += ` ${subsub[0]!.name}`;
    else s += ` {${subsub.map((x) => x.name).join('|')}}`;
  }
  for (const ch of ctx.commandOpts) {
    const o = ctx.findOpt(ch);
    s += o.hasArg ? ` [-${o.ch} ${o.name}]` : ` [-${o.ch}]`;
  }
  if (ctx.commandArg) s += ` ${ctx.commandArg}`;
  s += '\n';
  if (subsub && subsub.length) {
    s += 'Available subcommands:\n';
    for (const x of subsub) s += `  ${padR(x.name, 24)}${x.desc}\n`;
  }
  s += 'Options:\n';
  for (const ch of ctx.commandOpts) {
    const o = ctx.findOpt(ch);
    s += `  ${padR(`-${o.ch}, --${o.name}`, 24)}${o.desc}\n`;
  }
  out(s);
  exit(status);
}

/** do_generic_subcommand(): dispatch argv[optind] among nested subcommands. */
export async function doGenericSubcommand(subs: Subcommand[], ctx: RunContext, argv: Argv): Promise<number> {
  const name = argv.cur;
  for (const s of subs) {
    if (name === undefined || s.name !== name) continue;
    ctx.subcmdStack.push(s);
    if (s.flags & CMD_NEED_NODELIST) {
      const ret = await ctx.updateNodeList();
      if (ret < 0) {
        sdErr('Failed to get node list');
        exit(2);
      }
    }
    argv.optind++;
    if (s.flags & CMD_NEED_ARG && (argv.atEnd || argv.cur === '')) subcommandUsage(ctx, EXIT_USAGE);
    const ret = await s.fn(ctx, argv);
    if (ret === EXIT_USAGE) subcommandUsage(ctx, EXIT_USAGE);
    return ret;
  }
  subcommandUsage(ctx, EXIT_FAILURE);
}
