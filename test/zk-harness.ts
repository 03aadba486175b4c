// Starts and stops a private ZooKeeper server (Debian package `zookeeper`) for tests: a free loopback
// port, a temp data dir, tickTime 1000 (so a 3000 ms session timeout is honoured), forceSync=no, no
// AdminServer. Ready means `srvr` answers "Mode: standalone" (`ruok` answers before the server serves).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The server jar (override with SHEEP_ZK_JAR, e.g. to check the skip path). */
export const ZK_JAR = process.env.SHEEP_ZK_JAR || '/usr/share/java/zookeeper.jar';
export const ZK_CONF_DIR = '/etc/zookeeper/conf';

/** Why ZooKeeper cannot run here, or null when it can. */
export function zooKeeperMissing(): string | null {
  if (!existsSync(ZK_JAR)) return `${ZK_JAR} not found`;
  const javaOk = (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, 'java')));
  if (!javaOk) return 'java not found on PATH';
  return null;
}

/**
 * Whether the ZooKeeper tests can run: 'run'; 'skip' (not installed, prints a loud line naming the
 * Debian package); or, under CI=true, a missing server is 'fail' with the reason.
 */
export function zooKeeperVerdict(): { verdict: 'run' | 'skip' | 'fail'; why: string } {
  const missing = zooKeeperMissing();
  if (!missing) return { verdict: 'run', why: '' };
  const why = `ZooKeeper tests need the Debian package 'zookeeper' (apt-get install zookeeper): ${missing}`;
  if (process.env.CI === 'true') return { verdict: 'fail', why: `${why} — required under CI=true` };
  process.stderr.write(`\n!!!!!!!! SKIPPING: ${why} !!!!!!!!\n\n`);
  return { verdict: 'skip', why };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Sends a four-letter command and returns the reply ('' on any error). */
export function fourLetter(port: number, cmd: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const s = connect(port, '127.0.0.1');
    const timer = setTimeout(() => s.destroy(), timeoutMs);
    s.on('connect', () => s.write(cmd));
    s.on('data', (d) => (out += d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

export class ZooKeeperServer {
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly child: ChildProcess,
    private readonly javaPid: number,
  ) {}

  /** "127.0.0.1:PORT". */
  get connectString(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(opts: { tickTime?: number; readyTimeoutMs?: number } = {}): Promise<ZooKeeperServer> {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'zk-test-'));
    mkdirSync(join(dir, 'data'));
    const cfg = join(dir, 'zoo.cfg');
    writeFileSync(
      cfg,
      [
        `tickTime=${opts.tickTime ?? 1000}`,
        `dataDir=${join(dir, 'data')}`,
        `clientPort=${port}`,
        'clientPortAddress=127.0.0.1',
        'admin.enableServer=false',
        '4lw.commands.whitelist=srvr,ruok,mntr',
        'forceSync=no',
        'maxClientCnxns=0',
        '',
      ].join('\n'),
    );
    const log = join(dir, 'zk.log');
    // Java runs under a small shell that kills it when its stdin closes: on stop(), and also when this
    // test process dies without cleaning up (crash, OOM, the runner's timeout), so no server leaks.
    const java = ['java', '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-cp', `${ZK_CONF_DIR}:${ZK_JAR}`, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', cfg];
    const quoted = java.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    // (fd 3: a background job's stdin is /dev/null in a non-interactive shell, so pass the pipe as fd 3.)
    const script = `exec 3<&0; ${quoted} >'${log}' 2>&1 </dev/null 3<&- & jp=$!; echo "$jp"; { cat <&3 >/dev/null; kill "$jp" 2>/dev/null; } & wait "$jp"; sleep 0.2; rm -rf '${dir}'`;
    const child = spawn('sh', ['-c', script], { stdio: ['pipe', 'pipe', 'ignore'] });
    const javaPid = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d) => resolve(Number(String(d).trim())));
      child.once('exit', (c) => reject(new Error(`zookeeper launcher exited (${c})`)));
    });
    const server = new ZooKeeperServer(port, dir, child, javaPid);
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        const out = server.logTail();
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`zookeeper exited before serving: ${out}`);
      }
      const r = await fourLetter(port, 'srvr', 500);
      if (r.includes('Mode: standalone')) break;
      if (Date.now() > deadline) {
        const out = server.logTail();
        await server.stop();
        throw new Error(`zookeeper did not come up on port ${port}: ${out}`);
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    return server;
  }

  /** Kills the server and removes its directory. */
  async stop(): Promise<void> {
    const c = this.child;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.stdin!.end(); // the launcher kills java (SIGTERM) and exits when java has
      const t = setTimeout(() => {
        try {
          process.kill(this.javaPid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  pid(): number {
    return this.javaPid;
  }

  /** The server's `srvr` answer, for diagnostics. */
  srvr(): Promise<string> {
    return fourLetter(this.port, 'srvr');
  }

  logTail(): string {
    try {
      return readFileSync(join(this.dir, 'zk.log'), 'utf8').slice(-4000);
    } catch {
      return '';
    }
  }
}

/** A loopback TCP proxy in front of the server, so a test can cut client connections (not sessions). */
export class TcpProxy {
  private sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const sockets = new Set<Socket>();
    const server = createServer((down) => {
      const up = connect(targetPort, '127.0.0.1');
      for (const s of [down, up]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          sockets.delete(s);
          down.destroy();
          up.destroy();
        });
      }
      down.pipe(up);
      up.pipe(down);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    const proxy = new TcpProxy(server, typeof addr === 'object' && addr ? addr.port : 0);
    proxy.sockets = sockets;
    return proxy;
  }

  get connectString(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Cuts every proxied connection; clients reconnect (through the proxy) to the same session. */
  dropAll(): number {
    const n = this.sockets.size;
    for (const s of [...this.sockets]) s.destroy();
    return n;
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
