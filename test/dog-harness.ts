// Runs the dog executable as a child process, as scripts do, and collects its output and exit code.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const DOG = fileURLToPath(new URL('../src/bin/dog.js', import.meta.url));

export interface DogResult {
  code: number;
  /** stdout as latin1 text (dog output is bytes) */
  out: string;
  bin: Buffer;
  err: string;
}

/** dog with exactly these arguments; the SHEEPDOG_DOG_* environment is cleared unless `env` sets it. */
export function runDog(args: string[], input?: Buffer | string, env: NodeJS.ProcessEnv = {}): Promise<DogResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DOG, ...args], {
      env: { ...process.env, SHEEPDOG_DOG_ADDR: undefined, SHEEPDOG_DOG_PORT: undefined, SHEEPDOG_DOG_HINT: undefined, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const bin = Buffer.concat(out);
      resolve({ code: code ?? -1, out: bin.toString('latin1'), bin, err });
    });
    child.stdin.on('error', () => {});
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}
