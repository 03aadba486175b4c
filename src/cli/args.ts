// Command-line errors and integer options shared by the sheep-actors subcommands (start, cluster, sim).

/** Bad command-line input: the command prints it with its usage and exits 64. */
export class UsageError extends Error {}

export function intArg(flag: string, v: string | undefined, min: number, max: number): number {
  if (v === undefined) throw new UsageError(`option ${flag} requires a value`);
  if (!/^\d+$/.test(v)) throw new UsageError(`invalid ${flag} value '${v}': expected an integer in ${min}..${max}`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`invalid ${flag} value '${v}': must be in ${min}..${max}`);
  return n;
}
