// Live tests of the dog CLI against a 3-sheep in-process cluster (dist/src/bin/sheep-actors.js
// cluster DIR --nodes 3 --port P), run as real child processes and compared with the exact text
// Sheepdog 1.0's dog prints (upstream tests/functional/*.out where they apply, with dates
// filtered like common.filter does).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { removeDir, tempDir, timed, withTimeout } from './helpers.js';
import { runDog } from './dog-harness.js';

const SHEEP = fileURLToPath(new URL('../src/bin/sheep-actors.js', import.meta.url));
const MiB = 1024 * 1024;

/** common.filter: ctime(3) dates at line end, ISO dates and short ISO dates */
const filter = (s: string) =>
  s
    .replace(/[A-Z][a-z][a-z] [A-Za-z][a-z][a-z] +[0-9]+ \d\d:\d\d:\d\d \d{4}$/gm, 'DATE')
    .replace(/\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?/g, 'DATE');


let port = 0;
let dir = '';
let daemon: ChildProcess | null = null;
let daemonLog = '';

const dogRaw = runDog;

/** dog against the test cluster (-p added after the arguments, as cinder does it) */
const dog = (args: string[], input?: Buffer | string) => dogRaw([...args, '-p', String(port)], input);

async function portFree(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function pickPorts(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const p = 17000 + Math.floor(Math.random() * 997);
    if ((await portFree(p)) && (await portFree(p + 1)) && (await portFree(p + 2))) return p;
  }
  throw new Error('no free port range for the test cluster');
}

function killDaemon(): void {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  daemon = null;
}
process.on('exit', killDaemon);

const daemonThere = existsSync(SHEEP);

if (!daemonThere) {
  test('sheep daemon is available for live dog tests', () => {
    assert.unreachable(`live dog tests need ${SHEEP} (the sheep-actors daemon); build src/bin/sheep-actors.ts first`);
  });
} else {
  test.before(
    withTimeout(60_000, async () => {
      port = await pickPorts();
      dir = tempDir('dog-live-');
      daemon = spawn(process.execPath, [SHEEP, 'cluster', dir, '--nodes', '3', '--port', String(port)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      daemon.stdout!.on('data', (c: Buffer) => (daemonLog += c.toString()));
      daemon.stderr!.on('data', (c: Buffer) => (daemonLog += c.toString()));
      const deadline = Date.now() + 30_000;
      while (!/cluster of 3 sheep/.test(daemonLog)) {
        if (daemon.exitCode !== null) throw new Error(`sheep-actors exited early:\n${daemonLog}`);
        if (Date.now() > deadline) throw new Error(`sheep-actors did not start:\n${daemonLog}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }),
  );

  test.after(() => {
    killDaemon();
    if (dir) removeDir(dir);
  });

  test(
    'unreachable node: connect errors, "Failed to get node list", exit 2',
    timed(async () => {
      let free = 0;
      for (let p = port + 500; p < port + 600; p++) if (await portFree(p)) { free = p; break; }
      const r = await dogRaw(['node', 'list', '-p', String(free)]);
      assert.is(r.code, 2);
      assert.is(r.out, '');
      const refused = `failed to connect to 127.0.0.1:${free}: Connection refused\n`;
      assert.is(r.err, refused + refused + 'Failed to get node list\n');
      const l = await dogRaw(['vdi', 'list'], undefined, { SHEEPDOG_DOG_PORT: String(free) });
      assert.is(l.code, 2);
      assert.is(l.out, '  Name        Id    Size    Used  Shared    Creation time   VDI id  Copies  Tag   Block Size Shift\n');
      assert.is(l.err, refused + refused);
      const h = await dogRaw(['node', 'list', '-p', String(free)], undefined, { SHEEPDOG_DOG_HINT: '1' });
      assert.match(h.err, new RegExp(`hint: no sheep answered at 127\\.0\\.0\\.1:${free}\\. .*-a <address> -p <port>`));
    }),
  );

  test(
    'before format: cluster info waits for format, vdi create refuses',
    timed(async () => {
      const i = await dog(['cluster', 'info']);
      assert.is(i.code, 0);
      assert.is(i.out, 'Cluster status: Waiting for cluster to be formatted\n\n');
      const c = await dog(['vdi', 'create', 'test', '4M']);
      assert.is(c.code, 1);
      assert.is(c.err, 'Failed to create VDI test: Waiting for cluster to be formatted\n');
    }),
  );

  test(
    'node list',
    timed(async () => {
      const r = await dog(['node', 'list']);
      assert.is(r.code, 0);
      const row = (i: number) => `${String(i).padStart(4)}   ${`127.0.0.1:${port + i}`.padEnd(20)}\t128${String(i).padStart(11)}\n`;
      // zones are the daemon's business; compare everything else exactly
      const lines = r.out.split('\n');
      assert.is(lines[0], '  Id   Host:Port         V-Nodes       Zone');
      for (let i = 0; i < 3; i++) assert.is(lines[i + 1]!.replace(/ +\d+$/, ''), row(i).replace(/ +\d+\n$/, ''));
      const raw = await dog(['node', 'list', '-r']);
      assert.match(raw.out, new RegExp(`^0 127\\.0\\.0\\.1:${port} 128 \\d+\\n1 127\\.0\\.0\\.1:${port + 1} 128 \\d+\\n2 127\\.0\\.0\\.1:${port + 2} 128 \\d+\\n$`));
    }),
  );

  test(
    'cluster format (001.out: "using backend plain store")',
    timed(async () => {
      const r = await dog(['cluster', 'format']);
      if (r.code !== 0) {
        // keep the remaining tests meaningful even if the daemon rejects the default strategy
        const v = await dog(['cluster', 'format', '-V']);
        assert.is(v.code, 0, `cluster format -V failed too: ${v.err}`);
      }
      assert.is(r.err, '', 'daemon must report SD_CLUSTER_FLAG_AUTO_VNODES in CLUSTER_INFO before format (sheep does by default)');
      assert.is(r.out, 'using backend plain store\n');
      assert.is(r.code, 0);
    }),
  );

  test(
    'cluster info after format (030.out layout)',
    timed(async () => {
      const r = await dog(['cluster', 'info']);
      assert.is(r.code, 0);
      assert.is(
        filter(r.out),
        'Cluster status: running, auto-recovery enabled\n\n' +
          'Cluster created at DATE\n\n' +
          'Epoch Time           Version [Host:Port:V-Nodes,,,]\n' +
          `DATE      1 [127.0.0.1:${port}:128, 127.0.0.1:${port + 1}:128, 127.0.0.1:${port + 2}:128]\n`,
      );
      const raw = await dog(['cluster', 'info', '-r']);
      assert.match(raw.out, new RegExp(`^running, auto-recovery enabled\\n\\n\\d+ 1 \\[127\\.0\\.0\\.1:${port}:128, `));
      const j = await dog(['cluster', 'info', '-j']);
      const doc = JSON.parse(j.out);
      assert.is(doc.status, 'running');
      assert.is(doc.epochs[0].nodes.length, 3);
    }),
  );

  test(
    'vdi create test 4M; vdi list; vdi list -r; errors',
    timed(async () => {
      const c = await dog(['vdi', 'create', 'test', '4M']);
      assert.is(c.code, 0, c.err);
      assert.is(c.out + c.err, '');
      const l = await dog(['vdi', 'list']);
      assert.is(
        filter(l.out),
        '  Name        Id    Size    Used  Shared    Creation time   VDI id  Copies  Tag   Block Size Shift\n' +
          '  test         0  4.0 MB  0.0 MB  0.0 MB DATE   7c2b25      3                22\n',
      );
      const r = await dog(['vdi', 'list', '-r']);
      assert.match(r.out, /^= test 0 4194304 0 0 \d+ 7c2b25 3  22\n$/);
      const again = await dog(['vdi', 'create', 'test', '4M']);
      assert.is(again.code, 1);
      assert.is(again.err, 'Failed to create VDI test: VDI exists already\n');
      const bad = await dog(['vdi', 'create', 'bad', '4X']);
      assert.is(bad.code, 64);
      assert.is(bad.err, "Invalid size '4X'\nYou may use B, K, M, G, T or P suffixes for bytes, kilobytes, megabytes, gigabytes, terabytes and petabytes.\n");
      assert.ok(bad.out.startsWith('Usage: dog vdi create [-P] [-y] [-c copies] '));
      const nosize = await dog(['vdi', 'create', 'bad']);
      assert.is(nosize.code, 64);
      assert.is(nosize.err, 'Please specify the VDI size\n');
      const v = await dog(['vdi', 'create', '-v', 'test2', '1G']);
      assert.is(v.out, 'VDI ID of newly created VDI: fd3815\n');
      const big = await dog(['vdi', 'create', 'huge', '5T']);
      assert.is(big.code, 64);
      assert.is(
        big.err,
        "VDI size is larger than 4.0 TB bytes, please use '-y' to create a hyper volume with size up to 16 PB bytes or use '-z' to create larger object size volume\n",
      );
    }),
  );

  test(
    'missing VDI: read/write/snapshot exit 1, delete reports but exits 0 (as 1.0 does)',
    timed(async () => {
      const msg = 'Failed to open VDI nosuch (snapshot id: 0 snapshot tag: ): No VDI found\n';
      const r = await dog(['vdi', 'read', 'nosuch']);
      assert.is(r.code, 1);
      assert.is(r.err, msg);
      const w = await dog(['vdi', 'write', 'nosuch'], 'x');
      assert.is(w.code, 1);
      assert.is(w.err, msg);
      const d = await dog(['vdi', 'delete', 'nosuch']);
      assert.is(d.code, 0);
      assert.is(d.err, msg);
      const s = await dog(['vdi', 'snapshot', 'nosuch']);
      assert.is(s.code, 1);
      assert.is(s.err, 'Failed to create snapshot for nosuch: No VDI found\n');
      const l = await dog(['vdi', 'list', 'nosuch']);
      assert.is(l.code, 0);
      assert.is(l.out.split('\n').length, 2);
    }),
  );

  const data = randomBytes(10000);
  test(
    'vdi write / read at unaligned offsets across an object boundary',
    timed(async () => {
      assert.is((await dog(['vdi', 'create', 'rw', '12M'])).code, 0);
      const w = await dog(['vdi', 'write', 'rw', '4190000', '10000'], data);
      assert.is(w.code, 0, w.err);
      const r = await dog(['vdi', 'read', 'rw', '4190000', '10000']);
      assert.is(r.code, 0, r.err);
      assert.ok(r.bin.equals(data), 'read back what was written');
      const around = await dog(['vdi', 'read', 'rw', '4189990', '10020']);
      assert.ok(around.bin.subarray(0, 10).equals(Buffer.alloc(10)));
      assert.ok(around.bin.subarray(10, 10010).equals(data));
      assert.ok(around.bin.subarray(10010).equals(Buffer.alloc(10)));
      const whole = await dog(['vdi', 'read', 'rw']);
      assert.is(whole.bin.length, 12 * MiB);
      const l = await dog(['vdi', 'list', 'rw']);
      assert.match(filter(l.out), /\n  rw           0   12 MB  8\.0 MB  0\.0 MB DATE   [0-9a-f]+      3                22\n$/);
      const beyond = await dog(['vdi', 'write', 'rw', '13M'], 'x');
      assert.is(beyond.code, 1);
      assert.is(beyond.err, 'Write offset is beyond the end of the VDI\n');
      const rbeyond = await dog(['vdi', 'read', 'rw', '13M']);
      assert.is(rbeyond.err, 'Read offset is beyond the end of the VDI\n');
      const k = await dog(['vdi', 'write', 'rw', '1k', '3'], 'abc');
      assert.is(k.code, 0);
      assert.is((await dog(['vdi', 'read', 'rw', '1024', '3'])).out, 'abc');
    }),
  );

  test(
    'vdi snapshot -s tag, copy-on-write, read -s',
    timed(async () => {
      const s = await dog(['vdi', 'snapshot', '-s', 'snap1', 'rw']);
      assert.is(s.code, 0, s.err);
      const dup = await dog(['vdi', 'snapshot', '-s', 'snap1', 'rw']);
      assert.is(dup.code, 1);
      assert.is(dup.err, 'Failed to create snapshot for rw, maybe snapshot id (0) or tag (snap1) is existed\n');
      const num = await dog(['vdi', 'snapshot', '-s', '3', 'rw']);
      assert.is(num.code, 64);
      assert.is(num.err, 'Please specify a non-integer value for a snapshot tag name\n');
      const w = await dog(['vdi', 'write', 'rw', '4194300', '5'], 'hello');
      assert.is(w.code, 0, w.err);
      assert.is((await dog(['vdi', 'read', 'rw', '4194300', '5'])).out, 'hello');
      const old = await dog(['vdi', 'read', '-s', 'snap1', 'rw', '4190000', '10000']);
      assert.ok(old.bin.equals(data), 'snapshot keeps the old data');
      const byId = await dog(['vdi', 'read', '-s', '1', 'rw', '4190000', '10000']);
      assert.ok(byId.bin.equals(data));
      const cur = await dog(['vdi', 'read', 'rw', '4190000', '10000']);
      const expect = Buffer.from(data);
      Buffer.from('hello').copy(expect, 4194300 - 4190000);
      assert.ok(cur.bin.equals(expect), 'working VDI sees the new data');
      const l = await dog(['vdi', 'list', '-r', 'rw']);
      const lines = l.out.trim().split('\n');
      assert.is(lines.length, 2);
      assert.match(lines[0]!, /^s rw 1 12582912 8388608 0 \d+ [0-9a-f]+ 3 snap1 22$/);
      assert.match(lines[1]!, /^= rw 0 12582912 8388608 0 \d+ [0-9a-f]+ 3  22$/);
      const t = await dog(['vdi', 'tree']);
      assert.ok(filter(t.out).split('\n').includes('rw---[DATE]---(you are here)'), t.out);
    }),
  );

  test(
    'vdi clone -s, clone writes are copy-on-write',
    timed(async () => {
      const noS = await dog(['vdi', 'clone', 'rw', 'cl']);
      assert.is(noS.code, 64);
      assert.is(noS.err, "Only snapshot VDIs can be cloned\nPlease specify the '-s' option\n");
      assert.ok(noS.out.startsWith('Usage: dog vdi clone [-s snapshot] [-P] [-n] '));
      const c = await dog(['vdi', 'clone', '-s', 'snap1', 'rw', 'cl']);
      assert.is(c.code, 0, c.err);
      const r = await dog(['vdi', 'read', 'cl', '4190000', '10000']);
      assert.ok(r.bin.equals(data));
      assert.is((await dog(['vdi', 'write', 'cl', '0', '4'], 'CLON')).code, 0);
      assert.is((await dog(['vdi', 'read', 'cl', '0', '4'])).out, 'CLON');
      assert.is((await dog(['vdi', 'read', '-s', 'snap1', 'rw', '0', '4'])).bin.equals(Buffer.alloc(4)), true);
      const l = await dog(['vdi', 'list', '-r', 'cl']);
      assert.match(l.out, /^c cl 0 12582912 4194304 4194304 \d+ [0-9a-f]+ 3  22\n$/);
      const t = await dog(['vdi', 'tree']);
      assert.ok(t.out.split('\n').includes('cl---(you are here)'), t.out);
    }),
  );

  test(
    'vdi delete, vdi rollback, vdi resize',
    timed(async () => {
      const d = await dog(['vdi', 'delete', 'cl']);
      assert.is(d.code, 0, d.err);
      assert.is(d.err, '');
      assert.ok(!(await dog(['vdi', 'list', '-r'])).out.includes(' cl '));
      const noS = await dog(['vdi', 'rollback', 'rw']);
      assert.is(noS.code, 64);
      assert.is(noS.err, "Please specify the '-s' option\n");
      const rb = await dog(['vdi', 'rollback', '-f', '-s', 'snap1', 'rw']);
      assert.is(rb.code, 0, rb.err);
      const r = await dog(['vdi', 'read', 'rw', '4190000', '10000']);
      assert.ok(r.bin.equals(data), 'rolled back to the snapshot');
      const rs = await dog(['vdi', 'resize', 'test', '8M']);
      assert.is(rs.code, 0, rs.err);
      assert.match((await dog(['vdi', 'list', '-r', 'test'])).out, /^= test 0 8388608 /);
      const shrink = await dog(['vdi', 'resize', 'test', '2M']);
      assert.is(shrink.code, 64);
      assert.is(shrink.err, 'Shrinking VDIs is not implemented\n');
    }),
  );

  test(
    'vdi object map / location',
    timed(async () => {
      const m = await dog(['vdi', 'object', 'map', 'test']);
      assert.is(m.code, 0);
      assert.is(m.out, 'Index       VID\n');
      const loc = await dog(['vdi', 'object', 'location', 'test']);
      assert.is(loc.code, 0, loc.err);
      assert.match(loc.out, /^Looking for the inode object 0x7c2b25 with 3 nodes\n\n/);
      assert.match(loc.out, /\nAccording to sheepdog algorithm, the object should be located at:\n127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+\n$/);
      const na = await dog(['vdi', 'object', 'location', '-i', '1', 'test']);
      assert.is(na.out, 'The inode object 0x7c2b25 idx 1 is not allocated\n');
    }),
  );

  test(
    'node info, node recovery, vm list, json documents',
    timed(async () => {
      const i = await dog(['node', 'info']);
      assert.is(i.code, 0, i.err);
      const lines = i.out.split('\n');
      assert.is(lines[0], 'Id\tSize\tUsed\tAvail\tUse%');
      assert.match(lines[1]!, /^ 0\t\S+ [MGTP]B\t\S+ [MGTP]B\t\S+ [MGTP]B\t +\d+%$/);
      assert.match(i.out, /\nTotal\t.*%\n\nTotal virtual image size\t\S+ [MGTP]B\n$/);
      const rec = await dog(['node', 'recovery']);
      assert.is(rec.code, 0, rec.err);
      assert.is(rec.out, 'Nodes In Recovery:\n  Id   Host:Port         V-Nodes       Zone       Progress\n');
      const vm = await dog(['vm', 'list']);
      assert.is(vm.code, 0);
      assert.ok(vm.out.startsWith('  Name        Size    Used  Shared  Copies  In use by\n'));
      assert.match(vm.out, /\n  test      8\.0 MB  0\.0 MB  0\.0 MB      3  [-?]\n/);
      const j = JSON.parse((await dog(['vdi', 'list', '-j'])).out) as { name: string; type: string }[];
      assert.ok(j.some((v) => v.name === 'rw' && v.type === 'snapshot'));
      const nl = JSON.parse((await dog(['node', 'list', '--json'])).out) as { port: number }[];
      assert.equal(nl.map((n) => n.port), [port, port + 1, port + 2]);
    }),
  );

  test(
    'vdi setattr / getattr / setattr -x / setattr -d',
    timed(async () => {
      const s = await dog(['vdi', 'setattr', 'test', 'key1', 'value1']);
      assert.is(s.code, 0, s.err);
      assert.is((await dog(['vdi', 'getattr', 'test', 'key1'])).out, 'value1');
      const x = await dog(['vdi', 'setattr', '-x', 'test', 'key1', 'v2']);
      assert.is(x.code, 3);
      assert.is(x.err, "The attribute 'key1' already exists\n");
      const miss = await dog(['vdi', 'getattr', 'test', 'nokey']);
      assert.is(miss.code, 5);
      assert.is(miss.err, "Attribute 'nokey' not found\n");
      const stdin = await dog(['vdi', 'setattr', 'test', 'key2'], 'from stdin');
      assert.is(stdin.code, 0);
      assert.is((await dog(['vdi', 'getattr', 'test', 'key2'])).out, 'from stdin');
    }),
  );

  test(
    'cluster format on a non-empty cluster asks first (030.out) and "no" keeps the data',
    timed(async () => {
      const FORMAT_PRINT =
        '    __\n' +
        "   ()'`;\n" +
        '   /\\|`\n' +
        '  /  |   Caution! The cluster is not empty.\n' +
        '(/_)_|_  Are you sure you want to continue? [yes/no]: ';
      let r = await dog(['cluster', 'format'], 'no\n');
      if (r.err.includes("Need to specify the option of '-V'")) r = await dog(['cluster', 'format', '-V'], 'no\n');
      assert.is(r.code, 0, r.err);
      assert.is(r.out, FORMAT_PRINT);
      assert.ok((await dog(['vdi', 'list', '-r'])).out.includes('= test 0 '));
    }),
  );

  test(
    'cluster shutdown',
    timed(async () => {
      const r = await dog(['cluster', 'shutdown']);
      assert.is(r.code, 0, r.err);
      assert.is(r.out + r.err, '');
    }),
  );
}

test.run();
