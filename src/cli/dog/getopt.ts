// GNU getopt_long() as dog uses it (permuting, "--" terminator, unique-prefix long options,
// glibc's diagnostic texts). Yields events in argv order so callers can act on each option
// exactly when C dog would (e.g. -h prints usage before later options are looked at).

export interface OptSpec {
  ch: string;
  name: string;
  hasArg: boolean;
}

export type GetoptEvent =
  | { kind: 'opt'; ch: string; arg?: string }
  /** getopt returned '?'; the diagnostic has already been produced as `message` */
  | { kind: 'error'; message: string };

export interface GetoptResult {
  events: GetoptEvent[];
  /** the non-option arguments in order (argv[optind..] after permutation) */
  positionals: string[];
}

/**
 * Parses args (argv[optind..]) against the option specs. Scanning stops at the first error
 * only in the sense that the caller stops consuming events; all events are produced.
 */
export function getoptLong(args: readonly string[], specs: readonly OptSpec[], prog = 'dog'): GetoptResult {
  const events: GetoptEvent[] = [];
  const positionals: string[] = [];
  const byChar = new Map<string, OptSpec>();
  for (const s of specs) byChar.set(s.ch, s);

  let i = 0;
  while (i < args.length) {
    const a = args[i]!;
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      i++;
      const body = a.slice(2);
      const eq = body.indexOf('=');
      const name = eq >= 0 ? body.slice(0, eq) : body;
      const inlineArg = eq >= 0 ? body.slice(eq + 1) : undefined;
      let spec = specs.find((s) => s.name === name);
      if (!spec) {
        const cands = specs.filter((s) => s.name.startsWith(name));
        // glibc: ambiguous only if the candidates differ in (has_arg, val)
        const distinct = cands.filter(
          (c, k) => cands.findIndex((d) => d.hasArg === c.hasArg && d.ch === c.ch) === k,
        );
        if (cands.length === 0) {
          events.push({ kind: 'error', message: `${prog}: unrecognized option '--${name}'\n` });
          continue;
        }
        if (distinct.length > 1) {
          let msg = `${prog}: option '--${name}' is ambiguous; possibilities:`;
          for (const c of cands) msg += ` '--${c.name}'`;
          events.push({ kind: 'error', message: msg + '\n' });
          continue;
        }
        spec = cands[0]!;
      }
      if (spec.hasArg) {
        if (inlineArg !== undefined) events.push({ kind: 'opt', ch: spec.ch, arg: inlineArg });
        else if (i < args.length) events.push({ kind: 'opt', ch: spec.ch, arg: args[i++]! });
        else events.push({ kind: 'error', message: `${prog}: option '--${spec.name}' requires an argument\n` });
      } else if (inlineArg !== undefined) {
        events.push({ kind: 'error', message: `${prog}: option '--${spec.name}' doesn't allow an argument\n` });
      } else events.push({ kind: 'opt', ch: spec.ch });
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      i++;
      let j = 1;
      while (j < a.length) {
        const ch = a[j]!;
        j++;
        const spec = byChar.get(ch);
        if (!spec || ch === ':') {
          events.push({ kind: 'error', message: `${prog}: invalid option -- '${ch}'\n` });
          continue;
        }
        if (spec.hasArg) {
          if (j < a.length) events.push({ kind: 'opt', ch, arg: a.slice(j) });
          else if (i < args.length) events.push({ kind: 'opt', ch, arg: args[i++]! });
          else events.push({ kind: 'error', message: `${prog}: option requires an argument -- '${ch}'\n` });
          break;
        }
        events.push({ kind: 'opt', ch });
      }
      continue;
    }
    positionals.push(a);
    i++;
  }
  return { events, positionals };
}
