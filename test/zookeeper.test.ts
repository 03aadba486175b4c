// The zookeeper cluster driver against a real ZooKeeper server (Debian package `zookeeper`), started
// privately by test/zk-harness.ts: total order, block/unblock, node death (SIGKILL) and session expiry
// (SIGSTOP), log trimming with late joiners, big messages, and a 3-process sheep cluster on it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Client } from 'node-zookeeper-client';
import type { ClusterEvent, Member } from '../src/cluster/driver.js';
import { connectClient, parseZooKeeperSpec, ReplicatedState, removeTree, ZkSpecError, ZooKeeperDriver, type StateOutput } from '../src/cluster/zookeeper.js';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { Op, Res } from '../src/proto/constants.js';
import { createVdi, format, nodeList, waitForMembers, waitForPort } from './cluster-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';
import { freePort, TcpProxy, zooKeeperVerdict, ZooKeeperServer } from './zk-harness.js';

const SESSION_MS = 3000;
const DRIVER_URL = new URL('../src/cluster/zookeeper.js', import.meta.url).href;
const SHEEP_BIN = new URL('../src/bin/sheep.js', import.meta.url).pathname;

let zk: ZooKeeperServer;
let admin: Client;
let baseN = 0;
const base = () => `/t${process.pid}-${baseN++}`;

// ---- helpers --------------------------------------------------------------------------------------

async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function describe(ev: ClusterEvent): string {
  switch (ev.type) {
    case 'join':
    case 'leave':
      return `${ev.type} ${ev.member.id} [${ev.members.map((m) => m.id).join(' ')}]`;
    case 'notify':
      return `notify ${ev.from} ${Buffer.from(ev.msg).toString()}`;
    case 'block-granted':
      return `granted ${ev.ticket}`;
  }
}

/** One in-process member: a driver plus everything it delivered. */
class Node {
  readonly events: ClusterEvent[] = [];
  readonly driver: ZooKeeperDriver;
  lost: Error | null = null;
  constructor(
    readonly id: string,
    basePath: string,
    opts: { gcIntervalMs?: number; connect?: string } = {},
  ) {
    this.driver = new ZooKeeperDriver({ basePath, sessionTimeoutMs: SESSION_MS, onSessionLost: (e) => (this.lost = e), ...opts, connect: opts.connect ?? zk.connectString });
  }
  get member(): Member {
    return { id: this.id, node: Buffer.alloc(80, this.id.length) };
  }
  join(): Promise<void> {
    return this.driver.join(this.member, (ev) => this.events.push(ev));
  }
  /** Delivered events except block grants (those go to one node only). */
  ordered(): string[] {
    return this.events.filter((e) => e.type !== 'block-granted').map(describe);
  }
  notifies(): string[] {
    return this.events.filter((e) => e.type === 'notify').map(describe);
  }
  granted(ticket: number): boolean {
    return this.events.some((e) => e.type === 'block-granted' && e.ticket === ticket);
  }
  leaves(id: string): number {
    return this.events.filter((e) => e.type === 'leave' && e.member.id === id).length;
  }
}

/** The suffix of `longer` that starts where `node`'s own join is; for comparing a joiner's view. */
function fromJoinOf(seq: string[], id: string): string[] {
  const i = seq.findIndex((s) => s.startsWith(`join ${id} `));
  return i < 0 ? [] : seq.slice(i);
}

/** A member in a child process (so it can be SIGKILLed or SIGSTOPped); its events come as JSON lines. */
class ChildMember {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly child: ChildProcess;
  stderr = '';
  constructor(id: string, basePath: string, env: Record<string, string> = {}) {
    const code = `
      const { ZooKeeperDriver } = await import(process.env.ZK_DRIVER_URL);
      const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
      const self = { id: process.env.ZK_ID, node: new Uint8Array(80) };
      const onEvent = (ev) => out(ev.type === 'block-granted' ? { type: ev.type, ticket: ev.ticket }
        : ev.type === 'notify' ? { type: 'notify', from: ev.from, msg: Buffer.from(ev.msg).toString() }
        : { type: ev.type, member: ev.member.id, members: ev.members.map((m) => m.id) });
      const d = new ZooKeeperDriver({ connect: process.env.ZK_CONNECT, basePath: process.env.ZK_BASE, sessionTimeoutMs: ${SESSION_MS},
        onSessionLost: (e) => {
          out({ lost: e.message });
          if (process.env.ZK_REJOIN !== '1') process.exit(3);
          d.join(self, onEvent).then(() => out({ rejoined: d.incarnation }), (err) => { out({ rejoinFailed: String(err) }); process.exit(4); });
        } });
      await d.join(self, onEvent);
      out({ joined: d.incarnation });
      if (process.env.ZK_BLOCK === '1') out({ ticket: d.block() });
      setInterval(() => {}, 1000);
    `;
    this.child = spawn(process.execPath, ['--input-type=module', '-e', code], {
      env: { ...process.env, ZK_DRIVER_URL: DRIVER_URL, ZK_CONNECT: zk.connectString, ZK_BASE: basePath, ZK_ID: id, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    this.child.stdout!.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
      }
    });
    this.child.stderr!.on('data', (d) => (this.stderr += d));
  }
  has(pred: (l: Record<string, unknown>) => boolean): boolean {
    return this.lines.some(pred);
  }
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill(signal);
    await exited;
  }
}

async function leaveAll(nodes: Node[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.driver.leave().catch(() => undefined)));
}

// ---- tests ----------------------------------------------------------------------------------------

const { verdict, why } = zooKeeperVerdict();
const available = verdict === 'run';
if (verdict === 'fail') {
  test('ZooKeeper server is installed', () => {
    throw new Error(why);
  });
}

test.before(async () => {
  if (!available) return;
  zk = await ZooKeeperServer.start();
  admin = await connectClient(zk.connectString);
});

test.after(async () => {
  admin?.close();
  await zk?.stop();
});

const T = (ms: number, fn: () => Promise<void>) => withTimeout(ms, fn);
const zkTest = available ? test : test.skip;

test('spec parsing: servers, timeout, path, and clear errors', T(5_000, async () => {
  assert.equal(parseZooKeeperSpec('127.0.0.1:2181'), { connect: '127.0.0.1:2181', sessionTimeoutMs: 3000, basePath: '/sheepdog' });
  assert.equal(parseZooKeeperSpec('a:1,b.example:2181,timeout=5000,path=/c1/'), { connect: 'a:1,b.example:2181', sessionTimeoutMs: 5000, basePath: '/c1' });
  for (const bad of ['', 'host', 'host:', 'host:99999', 'h:1,timeout=abc', 'h:1,timeout=5', 'h:1,path=rel', 'h:1,colour=blue', 'timeout=3000']) {
    assert.throws(() => parseZooKeeperSpec(bad), (e: unknown) => e instanceof ZkSpecError, bad);
  }
}));

test('sheep -c zookeeper with a malformed spec is a usage error', T(10_000, async () => {
  const dir = tempDir('zk-usage-');
  try {
    const child = spawn(process.execPath, [SHEEP_BIN, dir, '-p', '1', '-c', 'zookeeper:nohostport', '-f'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const codeOut = await new Promise<number | null>((r) => child.once('exit', r));
    assert.is.not(codeOut, 0);
    assert.match(err, /invalid zookeeper server 'nohostport'/);
  } finally {
    removeDir(dir);
  }
}));

test('replicated state: duplicates dropped, overtaking events held, stale leaves ignored, snapshot round trip', T(5_000, async () => {
  const node = new Uint8Array(80);
  const run = (s: ReplicatedState, seq: number, ev: Parameters<ReplicatedState['apply']>[1]) => {
    const out: string[] = [];
    s.apply(seq, ev, (o: StateOutput) => out.push(o.type === 'grant' ? `grant ${o.id} ${o.ticket}` : describe(o)));
    return out;
  };
  const s = new ReplicatedState();
  assert.equal(run(s, 1, { t: 'join', id: 'a', inc: 'A1', node }), ['join a [a]']);
  assert.equal(run(s, 2, { t: 'join', id: 'b', inc: 'B1', node }), ['join b [a b]']);
  assert.equal(run(s, 3, { t: 'join', id: 'b', inc: 'B1', node }), [], 'resent join');
  const msg = (x: string) => Buffer.from(x);
  assert.equal(run(s, 4, { t: 'notify', id: 'a', inc: 'A1', c: 2, msg: msg('second') }), [], 'held: overtook c=1');
  assert.equal(run(s, 5, { t: 'notify', id: 'a', inc: 'A1', c: 1, msg: msg('first') }), ['notify a first', 'notify a second']);
  assert.equal(run(s, 6, { t: 'notify', id: 'a', inc: 'A1', c: 1, msg: msg('first') }), [], 'duplicate');
  assert.equal(run(s, 6, { t: 'notify', id: 'a', inc: 'A1', c: 3, msg: msg('old seq') }), [], 'a position already applied');
  assert.equal(run(s, 7, { t: 'block', id: 'b', inc: 'B1', c: 1, ticket: 9 }), ['grant b 9']);
  assert.equal(run(s, 8, { t: 'block', id: 'a', inc: 'A1', c: 3, ticket: 4 }), []);
  assert.equal(run(s, 9, { t: 'unblock', id: 'a', inc: 'A1', c: 4, msg: msg('not holder') }), [], 'unblock by a non-holder is ignored');
  // Snapshot here; the copy must continue exactly like the original.
  const copy = ReplicatedState.fromImage(JSON.parse(JSON.stringify(s.image(), (_k, v) => (v instanceof Uint8Array ? { u8: [...v] } : v)), (_k, v) => (v && v.u8 ? new Uint8Array(v.u8) : v)));
  for (const st of [s, copy]) {
    assert.equal(run(st, 10, { t: 'leave', id: 'b', inc: 'OLD' }), [], 'a leave for another incarnation is a no-op');
    assert.equal(run(st, 11, { t: 'join', id: 'b', inc: 'B2', node }), ['leave b [a]', 'grant a 4', 'join b [a b]'], 'a new incarnation replaces the old one (which held the block)');
    assert.equal(run(st, 12, { t: 'leave', id: 'b', inc: 'B1' }), [], 'the late leave of the old incarnation is a no-op');
    assert.equal(run(st, 13, { t: 'unblock', id: 'a', inc: 'A1', c: 5, msg: msg('done') }), ['notify a done']);
  }
}));

zkTest('three drivers join concurrently: identical event sequences, own join first', T(30_000, async () => {
  const b = base();
  const nodes = ['10.0.0.1:7000', '10.0.0.2:7000', '10.0.0.3:7000'].map((id) => new Node(id, b));
  await Promise.all(nodes.map((n) => n.join()));
  await waitUntil(() => nodes.every((n) => n.ordered().at(-1)?.split('[')[1]?.split(' ').length === 3), 10_000, 'all three joins');
  for (const n of nodes) assert.ok(n.ordered()[0]!.startsWith(`join ${n.id} `), `${n.id}'s first event is its own join: ${n.ordered()[0]}`);
  // Everyone agrees on the order from their own join on; the oldest saw everything.
  const oldest = nodes.reduce((a, c) => (a.ordered().length >= c.ordered().length ? a : c));
  for (const n of nodes) assert.equal(n.ordered(), fromJoinOf(oldest.ordered(), n.id));
  const finalLists = nodes.map((n) => n.ordered().at(-1));
  assert.ok(finalLists.every((l) => l === finalLists[0]));
  await leaveAll(nodes);
}));

zkTest('concurrent notifies from three senders: one order everywhere, per-sender FIFO', T(30_000, async () => {
  const b = base();
  const nodes = ['a:1', 'b:1', 'c:1'].map((id) => new Node(id, b));
  for (const n of nodes) await n.join();
  await waitUntil(() => nodes[0]!.ordered().length === 3, 10_000, 'joins');
  const PER = 200;
  for (let i = 0; i < PER; i++) for (const n of nodes) n.driver.notify(Buffer.from(`${n.id}#${i}`));
  await waitUntil(() => nodes.every((n) => n.notifies().length === 3 * PER), 20_000, 'all notifies');
  const seq0 = nodes[0]!.notifies();
  for (const n of nodes) assert.equal(n.notifies(), seq0);
  for (const n of nodes) {
    const mine = seq0.filter((s) => s.startsWith(`notify ${n.id} `)).map((s) => Number(s.split('#')[1]));
    assert.equal(mine, [...Array(PER).keys()]);
  }
  // Senders really interleave (the order is not just one sender after another).
  const firstSenders = new Set(seq0.slice(0, 30).map((s) => s.split(' ')[1]));
  assert.ok(firstSenders.size > 1, 'interleaved');
  await leaveAll(nodes);
}));

zkTest('block/unblock: mutual exclusion, FIFO grants, unblock message ordered for all', T(30_000, async () => {
  const b = base();
  const nodes = ['a:2', 'b:2', 'c:2'].map((id) => new Node(id, b));
  for (const n of nodes) await n.join();
  await waitUntil(() => nodes[0]!.ordered().length === 3, 10_000, 'joins');
  // FIFO: a holds; b asks, then c asks; a releases -> b, then c.
  const ta = nodes[0]!.driver.block();
  await waitUntil(() => nodes[0]!.granted(ta), 5_000, 'a granted');
  const tb = nodes[1]!.driver.block();
  await new Promise((r) => setTimeout(r, 150));
  const tc = nodes[2]!.driver.block();
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(!nodes[1]!.granted(tb) && !nodes[2]!.granted(tc), 'nobody else while a holds');
  nodes[0]!.driver.unblock(Buffer.from('from-a'));
  await waitUntil(() => nodes[1]!.granted(tb), 5_000, 'b granted');
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(!nodes[2]!.granted(tc), 'c waits for b');
  nodes[1]!.driver.unblock(Buffer.from('from-b'));
  await waitUntil(() => nodes[2]!.granted(tc), 5_000, 'c granted');
  nodes[2]!.driver.unblock(Buffer.from('from-c'));
  await waitUntil(() => nodes.every((n) => n.notifies().length === 3), 5_000, 'unblock messages');
  for (const n of nodes) assert.equal(n.notifies(), ['notify a:2 from-a', 'notify b:2 from-b', 'notify c:2 from-c']);
  // Mutual exclusion under contention: 3 nodes x 5 critical sections each.
  let inside = 0;
  let maxInside = 0;
  const order: string[] = [];
  await Promise.all(
    nodes.map(async (n) => {
      for (let k = 0; k < 5; k++) {
        const t = n.driver.block();
        await waitUntil(() => n.granted(t), 10_000, `${n.id} grant`);
        inside++;
        maxInside = Math.max(maxInside, inside);
        await new Promise((r) => setTimeout(r, 5));
        inside--;
        order.push(`${n.id}/${k}`);
        n.driver.unblock(Buffer.from(`${n.id}/${k}`));
      }
    }),
  );
  assert.is(maxInside, 1);
  await waitUntil(() => nodes.every((n) => n.notifies().length === 18), 5_000, 'all unblocks');
  const tail = nodes[0]!.notifies().slice(3).map((s) => s.split(' ')[2]);
  assert.equal(tail, order, 'unblock messages are delivered in critical-section order');
  for (const n of nodes) assert.equal(n.notifies(), nodes[0]!.notifies());
  await leaveAll(nodes);
}));

zkTest('holder session dies: one leave everywhere and the block passes on', T(30_000, async () => {
  const b = base();
  const nodes = ['a:3', 'b:3', 'c:3'].map((id) => new Node(id, b));
  for (const n of nodes) await n.join();
  await waitUntil(() => nodes[0]!.ordered().length === 3, 10_000, 'joins');
  const tb = nodes[1]!.driver.block();
  await waitUntil(() => nodes[1]!.granted(tb), 5_000, 'b holds');
  const tc = nodes[2]!.driver.block();
  await new Promise((r) => setTimeout(r, 200));
  nodes[1]!.driver.simulateCrash(); // session closed without a leave event
  const ms = await waitUntil(() => nodes[2]!.granted(tc), 10_000, 'c granted after b died');
  await waitUntil(() => nodes[0]!.leaves('b:3') === 1, 5_000, 'a sees the leave');
  await new Promise((r) => setTimeout(r, 1500));
  for (const n of [nodes[0]!, nodes[2]!]) assert.is(n.leaves('b:3'), 1, 'exactly one leave');
  assert.equal(fromJoinOf(nodes[0]!.ordered(), 'c:3'), nodes[2]!.ordered());
  process.stderr.write(`  [zk] block passed on ${ms} ms after its holder's session closed\n`);
  nodes[2]!.driver.unblock(Buffer.from('x'));
  await leaveAll(nodes);
}));

zkTest('SIGKILL of a member process: one ordered leave within the session timeout, lock released', T(40_000, async () => {
  const b = base();
  const nodes = ['a:4', 'b:4'].map((id) => new Node(id, b));
  for (const n of nodes) await n.join();
  const child = new ChildMember('k:4', b, { ZK_BLOCK: '1' });
  try {
    await waitUntil(() => child.has((l) => l.type === 'block-granted'), 15_000, `child holds the block (${child.stderr})`);
    await waitUntil(() => nodes.every((n) => n.ordered().some((s) => s.startsWith('join k:4'))), 5_000, 'join seen');
    const tb = nodes[1]!.driver.block();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!nodes[1]!.granted(tb));
    const killedAt = Date.now();
    await child.kill('SIGKILL');
    await waitUntil(() => nodes.every((n) => n.leaves('k:4') === 1), SESSION_MS + 6_000, 'leave of the killed member');
    const ms = Date.now() - killedAt;
    await waitUntil(() => nodes[1]!.granted(tb), 2_000, 'block passes to b');
    await new Promise((r) => setTimeout(r, 2000));
    for (const n of nodes) assert.is(n.leaves('k:4'), 1, 'exactly one leave');
    assert.equal(nodes[1]!.ordered(), fromJoinOf(nodes[0]!.ordered(), 'b:4'));
    assert.equal(nodes[0]!.ordered().at(-1), 'leave k:4 [a:4 b:4]');
    process.stderr.write(`  [zk] SIGKILL -> leave delivered after ${ms} ms (session timeout ${SESSION_MS} ms)\n`);
    assert.ok(ms < SESSION_MS + 3000, `leave within timeout + 3 s (took ${ms} ms)`);
    nodes[1]!.driver.unblock(Buffer.from('done'));
  } finally {
    await child.kill();
    await leaveAll(nodes);
  }
}));

zkTest('SIGSTOP past the timeout: declared gone; on SIGCONT it notices and rejoins with a new session', T(40_000, async () => {
  const b = base();
  const a = new Node('a:5', b);
  await a.join();
  const child = new ChildMember('s:5', b, { ZK_REJOIN: '1' });
  try {
    await waitUntil(() => child.has((l) => 'joined' in l), 15_000, `child joined (${child.stderr})`);
    const firstInc = child.lines.find((l) => 'joined' in l)!.joined as string;
    await waitUntil(() => a.ordered().some((s) => s.startsWith('join s:5')), 5_000, 'a sees the join');
    const stoppedAt = Date.now();
    child.child.kill('SIGSTOP');
    await waitUntil(() => a.leaves('s:5') === 1, SESSION_MS + 6_000, 'a sees the frozen member leave');
    const ms = Date.now() - stoppedAt;
    child.child.kill('SIGCONT');
    await waitUntil(() => child.has((l) => 'lost' in l), 5_000, 'the child notices it lost its session');
    await waitUntil(() => child.has((l) => 'rejoined' in l), 15_000, `the child rejoins (${JSON.stringify(child.lines)})`);
    const secondInc = child.lines.find((l) => 'rejoined' in l)!.rejoined as string;
    assert.is.not(secondInc, firstInc, 'a new session');
    await waitUntil(() => a.ordered().filter((s) => s.startsWith('join s:5')).length === 2, 5_000, 'a sees the rejoin');
    assert.equal(a.ordered(), ['join a:5 [a:5]', 'join s:5 [a:5 s:5]', 'leave s:5 [a:5]', 'join s:5 [a:5 s:5]']);
    // The rejoined child's first event after losing the session is its own join with the full list.
    const afterLost = child.lines.slice(child.lines.findIndex((l) => 'lost' in l) + 1).filter((l) => 'type' in l);
    assert.equal(afterLost[0], { type: 'join', member: 's:5', members: ['a:5', 's:5'] });
    process.stderr.write(`  [zk] SIGSTOP -> leave delivered after ${ms} ms\n`);
  } finally {
    await child.kill();
    await leaveAll([a]);
  }
}));

zkTest('a connection cut in the middle of a reply: the client reconnects to its session instead of crashing', T(20_000, async () => {
  const client = await connectClient(zk.connectString);
  try {
    const manager = (client as unknown as { connectionManager: { pendingBuffer: Buffer | null; socket: { destroy(): void } } }).connectionManager;
    const session = client.getSessionId().toString('hex');
    // The first 3 bytes of a reply arrived, then the connection broke.
    manager.pendingBuffer = Buffer.from([0, 0, 0]);
    const reconnected = new Promise<void>((r) => client.once('connected', () => r()));
    manager.socket.destroy();
    await reconnected;
    assert.is(client.getSessionId().toString('hex'), session, 'the same session');
    const exists = await new Promise<boolean>((res, rej) => client.exists('/', (e, stat) => (e ? rej(e) : res(!!stat))));
    assert.ok(exists, 'requests work on the new connection');
  } finally {
    client.close();
  }
}));

zkTest('connection loss (same session): resent appends are deduplicated, order holds', T(40_000, async () => {
  const b = base();
  const proxy = await TcpProxy.start(zk.port);
  const a = new Node('a:9', b, { connect: proxy.connectString });
  const c = new Node('c:9', b);
  try {
    await a.join();
    await c.join();
    const N = 400;
    let sent = 0;
    let drops = 0;
    while (sent < N) {
      for (let k = 0; k < 50; k++) a.driver.notify(Buffer.from(`n${sent++}`));
      // Cut at once (requests lost on the way) or a moment later (some applied, their replies lost).
      if (drops % 2 === 1) await new Promise((r) => setTimeout(r, 2));
      if (proxy.dropAll() > 0) drops++;
      await new Promise((r) => setTimeout(r, 150));
    }
    const expected = Array.from({ length: N }, (_, i) => `notify a:9 n${i}`);
    await waitUntil(() => a.notifies().length >= N && c.notifies().length >= N, 30_000, `all ${N} notifies (a ${a.notifies().length}, c ${c.notifies().length})`);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(c.notifies(), expected);
    assert.equal(a.notifies(), expected);
    assert.is(a.lost, null, 'the session survived');
    assert.is(a.leaves('a:9') + c.leaves('a:9'), 0, 'nobody saw a leave');
    process.stderr.write(`  [zk] ${drops} connection drops: ${a.driver.stats.resent} appends resent, ${c.driver.stats.duplicates} duplicates dropped, ${c.driver.stats.heldBack} held back\n`);
    assert.ok(a.driver.stats.resent > 0, 'the resend path ran');
  } finally {
    await leaveAll([a, c]);
    await proxy.close();
  }
}));

zkTest('log trimming: snapshot + trimmed queue; a late joiner gets the right members and block queue', T(40_000, async () => {
  const b = base();
  const nodes = ['a:6', 'b:6'].map((id) => new Node(id, b, { gcIntervalMs: 200 }));
  for (const n of nodes) await n.join();
  for (let i = 0; i < 300; i++) nodes[i % 2]!.driver.notify(Buffer.from(`m${i}`));
  await waitUntil(() => nodes.every((n) => n.notifies().length === 300), 10_000, 'notifies');
  // a holds the block, b waits: the joiner must inherit that queue from the snapshot.
  const ta = nodes[0]!.driver.block();
  await waitUntil(() => nodes[0]!.granted(ta), 5_000, 'a holds');
  const tb = nodes[1]!.driver.block();
  const queueLen = async () => (await new Promise<string[]>((res, rej) => admin.getChildren(`${b}/queue`, (e, c) => (e ? rej(e) : res(c))))).length;
  await waitUntil(async () => (await queueLen()) < 50, 10_000, 'queue trimmed');
  const c = new Node('c:6', b);
  await c.join();
  assert.equal(c.ordered(), ['join c:6 [a:6 b:6 c:6]']);
  const tc = c.driver.block();
  await new Promise((r) => setTimeout(r, 200));
  nodes[0]!.driver.unblock(Buffer.from('u-a'));
  await waitUntil(() => nodes[1]!.granted(tb), 5_000, 'b granted after a');
  assert.ok(!c.granted(tc));
  nodes[1]!.driver.unblock(Buffer.from('u-b'));
  await waitUntil(() => c.granted(tc), 5_000, 'c granted after b');
  c.driver.unblock(Buffer.from('u-c'));
  await waitUntil(() => c.notifies().length === 3, 5_000, 'c sees the unblocks');
  assert.equal(c.notifies(), ['notify a:6 u-a', 'notify b:6 u-b', 'notify c:6 u-c']);
  for (const n of nodes) assert.equal(fromJoinOf(n.ordered(), 'c:6'), c.ordered());
  await leaveAll([...nodes, c]);
}));

zkTest('messages bigger than a znode travel as blob parts', T(30_000, async () => {
  const b = base();
  const nodes = ['a:7', 'b:7'].map((id) => new Node(id, b));
  for (const n of nodes) await n.join();
  const big = Buffer.alloc(2_500_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff;
  nodes[0]!.driver.notify(Buffer.from('before'));
  nodes[0]!.driver.notify(big);
  nodes[0]!.driver.notify(Buffer.from('after'));
  await waitUntil(() => nodes.every((n) => n.events.filter((e) => e.type === 'notify').length === 3), 10_000, 'all three');
  for (const n of nodes) {
    const msgs = n.events.filter((e) => e.type === 'notify').map((e) => Buffer.from((e as { msg: Uint8Array }).msg));
    assert.equal(msgs[0]!.toString(), 'before');
    assert.ok(msgs[1]!.equals(big), 'big message intact');
    assert.equal(msgs[2]!.toString(), 'after');
  }
  await leaveAll(nodes);
}));

zkTest('clean leave removes the member znode at once; removeTree deletes a deep tree', T(20_000, async () => {
  const b = base();
  const a = new Node('a:8', b);
  const c = new Node('c:8', b);
  await a.join();
  await c.join();
  const members = () => new Promise<string[]>((res, rej) => admin.getChildren(`${b}/member`, (e, ch) => (e ? rej(e) : res(ch))));
  assert.is((await members()).length, 2);
  const t0 = Date.now();
  await c.driver.leave();
  assert.equal(await members(), [encodeURIComponent('a:8')]);
  await waitUntil(() => a.leaves('c:8') === 1, 2_000, 'leave delivered');
  process.stderr.write(`  [zk] clean leave delivered after ${Date.now() - t0} ms\n`);
  await a.driver.leave();
  await removeTree(admin, b);
  const exists = await new Promise<boolean>((res) => admin.exists(b, (_e, st) => res(!!st)));
  assert.is(exists, false);
}));

// ---- a sheep cluster on ZooKeeper -----------------------------------------------------------------

interface SheepProc {
  port: number;
  dir: string;
  child: ChildProcess;
  stderr: string;
  exit: Promise<number | null>;
}

function startSheep(dir: string, port: number, zone: number, spec: string): SheepProc {
  const child = spawn(process.execPath, [SHEEP_BIN, dir, '-p', String(port), '-z', String(zone), '-c', spec, '-b', '127.0.0.1', '-f'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const p: SheepProc = { port, dir, child, stderr: '', exit: new Promise((r) => child.once('exit', (code) => r(code))) };
  child.stderr!.on('data', (d) => (p.stderr += d));
  return p;
}

async function memberCount(port: number): Promise<number> {
  const c = await SheepClient.connect('127.0.0.1', port);
  try {
    return (await nodeList(c)).length;
  } finally {
    c.close();
  }
}

zkTest('3 sheep on -c zookeeper: format, VDI I/O through every node; SIGSTOP past the timeout', T(120_000, async () => {
  const root = tempDir('zk-sheep-');
  const spec = `zookeeper:${zk.connectString},timeout=${SESSION_MS},path=${base()}`;
  const sheep: SheepProc[] = [];
  const clients: SheepClient[] = [];
  try {
    // Two sheep, format, then a third joins the formatted cluster.
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      sheep.push(startSheep(join(root, String(i)), port, i, spec));
      await waitForPort(port, 15_000);
      await waitForMembers(port, i + 1, 15_000);
      if (i === 1) {
        clients.push(await SheepClient.connect('127.0.0.1', sheep[0]!.port));
        await format(clients[0]!, 2);
      }
    }
    for (const s of sheep) await waitForMembers(s.port, 3, 10_000);
    for (const s of sheep.slice(1)) clients.push(await SheepClient.connect('127.0.0.1', s.port));
    const v = await createVdi(clients[1]!, 'zkvol', 64n << 20n);
    assert.is(v.result, Res.SUCCESS);
    const data = Buffer.alloc(5 * 1024 * 1024 + 777);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 5) & 0xff;
    await writeVdi(clients[0]!, v.vid, 4096, data);
    for (const c of clients) assert.ok((await readVdi(c, v.vid, 4096, data.length)).equals(data), 'read through every node');
    const patch = Buffer.alloc(100_000, 0xab);
    await writeVdi(clients[2]!, v.vid, 1_000_000, patch);
    data.set(patch, 1_000_000 - 4096);
    for (const c of clients) assert.ok((await readVdi(c, v.vid, 4096, data.length)).equals(data), 'second write visible everywhere');

    // Freeze node 2 past the session timeout.
    const frozen = sheep[2]!;
    clients[2]!.close();
    frozen.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await waitUntil(async () => (await memberCount(sheep[0]!.port)) === 2 && (await memberCount(sheep[1]!.port)) === 2, SESSION_MS + 8_000, 'the others list the frozen sheep as gone');
    const goneMs = Date.now() - stoppedAt;
    frozen.child.kill('SIGCONT');
    const code = await Promise.race([frozen.exit, new Promise<string>((r) => setTimeout(() => r('still running'), 5_000))]);
    assert.is(code, 1, `the resumed sheep exits on session loss (got ${code}; stderr: ${frozen.stderr.slice(-500)})`);
    assert.match(frozen.stderr, /zookeeper session lost/);
    for (const s of sheep.slice(0, 2)) assert.is(await memberCount(s.port), 2);
    // Nothing corrupted: the data reads back through both survivors, and they still take writes.
    for (const c of clients.slice(0, 2)) assert.ok((await readVdi(c, v.vid, 4096, data.length)).equals(data), 'data intact after the freeze');
    const patch2 = Buffer.alloc(50_000, 0x3c);
    await writeVdi(clients[1]!, v.vid, 2_000_000, patch2);
    data.set(patch2, 2_000_000 - 4096);
    for (const c of clients.slice(0, 2)) assert.ok((await readVdi(c, v.vid, 4096, data.length)).equals(data), 'write after the freeze');
    // A supervisor restart: the same sheep joins again and serves the same bytes.
    const again = startSheep(frozen.dir, frozen.port, 2, spec);
    sheep[2] = again;
    await waitForPort(again.port, 15_000);
    for (const s of sheep) await waitForMembers(s.port, 3, 15_000);
    const c2 = await SheepClient.connect('127.0.0.1', again.port);
    clients[2] = c2;
    // It may answer WAIT_FOR_JOIN for a moment while it settles into the cluster. NOTE: the node layer
    // (not the driver; the local driver does the same) can serve the restarted sheep's pre-crash bytes
    // for objects written while it was away until its recovery reaches them: counted and reported here.
    let stale = 0;
    let lastErr = '';
    await waitUntil(async () => {
      try {
        if ((await readVdi(c2, v.vid, 4096, data.length)).equals(data)) return true;
        stale++;
      } catch (err) {
        lastErr = (err as Error).message;
      }
      return false;
    }, 20_000, 'a correct read through the restarted sheep').catch((err) => {
      throw new Error(`${(err as Error).message}: ${lastErr || `${stale} stale reads`}`);
    });
    if (stale > 0) process.stderr.write(`  [zk] NOTE (node layer): the restarted sheep served stale bytes ${stale} time(s) before its recovery caught up\n`);
    const info = await c2.request({ opcode: Op.GET_NODE_LIST, dataLength: 6144 * 80 });
    assert.is(info.result, Res.SUCCESS);
    process.stderr.write(`  [zk] frozen sheep listed as gone after ${goneMs} ms\n`);
  } finally {
    for (const c of clients) c?.close();
    for (const s of sheep) {
      if (s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill('SIGCONT');
        s.child.kill('SIGKILL');
        await s.exit;
      }
    }
    removeDir(root);
  }
}));

zkTest('3 sheep that all joined before format each serve reads (node layer: last joiner builds its ring)', T(60_000, async () => {
  const root = tempDir('zk-sheep-pre-');
  const spec = `zookeeper:${zk.connectString},timeout=${SESSION_MS},path=${base()}`;
  const sheep: SheepProc[] = [];
  const clients: SheepClient[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      sheep.push(startSheep(join(root, String(i)), port, i, spec));
      await waitForPort(port, 15_000);
      await waitForMembers(port, i + 1, 15_000);
    }
    for (const s of sheep) await waitForMembers(s.port, 3, 10_000);
    for (const s of sheep) clients.push(await SheepClient.connect('127.0.0.1', s.port));
    await format(clients[0]!, 3);
    const v = await createVdi(clients[1]!, 'pre', 16n << 20n);
    assert.is(v.result, Res.SUCCESS);
    const data = Buffer.alloc(100_000, 0x42);
    await writeVdi(clients[0]!, v.vid, 0, data);
    const failures: string[] = [];
    for (const [i, c] of clients.entries()) {
      try {
        if (!(await readVdi(c, v.vid, 0, data.length)).equals(data)) failures.push(`sheep ${i}: wrong bytes`);
      } catch (err) {
        failures.push(`sheep ${i}: ${(err as Error).message}`);
      }
    }
    assert.equal(failures, [], 'every sheep reads the VDI');
  } finally {
    for (const c of clients) c?.close();
    for (const s of sheep) {
      if (s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill('SIGKILL');
        await s.exit;
      }
    }
    removeDir(root);
  }
}));

test.run();
