// Pure formatting / parsing tests for the dog CLI: sizes as Sheepdog prints and parses them,
// C rounding, getopt_long behaviour, table lines checked against upstream tests/functional/*.out
// (dates filtered the way common.filter does), the tree view, and usage/exit codes of main().
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers.js';
import {
  EXIT_USAGE,
  cFixed,
  ctime,
  parseCopy,
  parseSize,
  renderProgress,
  setSink,
  strnumberRaw,
  strtod,
  type Sink,
} from '../src/cli/dog/common.js';
import { getoptLong } from '../src/cli/dog/getopt.js';
import { VdiTree } from '../src/cli/dog/tree.js';
import { VDI_LIST_HEADER, formatVdiListLine, nodeIdToStr, rawEscape } from '../src/cli/dog/vdi.js';
import { formatEpochLine } from '../src/cli/dog/cluster.js';
import { formatNodeListLine } from '../src/cli/dog/node.js';
import { formatVmListLine } from '../src/cli/dog/vm.js';
import { main } from '../src/cli/dog/main.js';
import {
  BACKUP_END_IDX,
  compactObjBackup,
  encodeBackupHeader,
  encodeObjBackupHeader,
  parseBackupStream,
} from '../src/cli/dog/backup.js';
import { VDI_CHECK_NO_MAJORITY_FOUND, VDI_CHECK_NO_OBJ_FOUND, VDI_CHECK_SUCCESS, voteMajority } from '../src/cli/dog/check.js';

const MiB = 1024n * 1024n;
/** common.filter's _filter_short_date / _filter_iso_date */
const filterDate = (s: string) => s.replace(/\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?/g, 'DATE');

async function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let o = '';
  let e = '';
  const sink: Sink = {
    out: (s) => (o += typeof s === 'string' ? s : Buffer.from(s).toString('latin1')),
    err: (s) => (e += s),
    outAsync: async (b) => {
      o += Buffer.from(b).toString('latin1');
    },
    stdoutIsTTY: () => false,
    stderrIsTTY: () => false,
  };
  const old = setSink(sink);
  try {
    const code = await main(args, env);
    return { code, out: o, err: e };
  } finally {
    setSink(old);
  }
}

test(
  'strnumber: MB/GB units, one decimal below 10, raw bytes',
  timed(() => {
    assert.is(strnumberRaw(0n, false), '0.0 MB');
    assert.is(strnumberRaw(4n * MiB, false), '4.0 MB');
    assert.is(strnumberRaw(10n * MiB, false), '10 MB');
    assert.is(strnumberRaw(12n * MiB, false), '12 MB');
    assert.is(strnumberRaw(1536n * MiB, false), '1.5 GB');
    assert.is(strnumberRaw(5n * 1024n * MiB, false), '5.0 GB');
    assert.is(strnumberRaw(864n * MiB, false), '864 MB');
    assert.is(strnumberRaw(1n << 54n, false), '16 PB');
    assert.is(strnumberRaw(4n << 40n, false), '4.0 TB');
    assert.is(strnumberRaw(512n, false), '0.0 MB');
    assert.is(strnumberRaw(4n * MiB, true), '4194304');
    assert.is(strnumberRaw((1n << 64n) - 1n, true), '18446744073709551615');
    // printf rounds the exact value half to even
    assert.is(strnumberRaw(10n * MiB + MiB / 2n, false), '10 MB');
    assert.is(strnumberRaw(11n * MiB + MiB / 2n, false), '12 MB');
    assert.is(strnumberRaw((9n * MiB * 100n + 96n * MiB) / 100n, false), '10.0 MB');
  }),
);

test(
  'cFixed: glibc rounding (ties to even) and padding-free output',
  timed(() => {
    assert.is(cFixed(2.25, 1), '2.2');
    assert.is(cFixed(2.35, 1), '2.4'); // 2.35 is slightly above in binary
    assert.is(cFixed(0.5, 0), '0');
    assert.is(cFixed(1.5, 0), '2');
    assert.is(cFixed(2.5, 0), '2');
    assert.is(cFixed(99.95, 1), '100.0');
    assert.is(cFixed(0, 3), '0.000');
    assert.is(cFixed(123.4567, 3), '123.457');
    assert.is(cFixed(NaN, 1), 'nan');
  }),
);

test(
  'option_parse_size: suffixes B K M G T P in either case, strtod numbers',
  timed(() => {
    assert.is(parseSize('4M', false), 4n * MiB);
    assert.is(parseSize('4m', false), 4n * MiB);
    assert.is(parseSize('10', false), 10n);
    assert.is(parseSize('10b', false), 10n);
    assert.is(parseSize('1K', false), 1024n);
    assert.is(parseSize('1.5G', false), 1536n * MiB);
    assert.is(parseSize('2T', false), 2n << 40n);
    assert.is(parseSize('16P', false), 1n << 54n);
    assert.is(parseSize('0x10k', false), 16384n);
    assert.is(parseSize('1e3', false), 1000n);
    assert.is(parseSize('', false), 0n);
    assert.is(parseSize('4MB', false), null);
    assert.is(parseSize('4X', false), null);
    assert.is(parseSize('abc', false), null);
    assert.is(parseSize('4 M', false), null);
    assert.equal(strtod('  -1.5e2xyz'), { value: -150, end: 8 });
  }),
);

test(
  'option_parse_size: error text',
  timed(() => {
    let err = '';
    const old = setSink({ out: () => {}, err: (s) => (err += s), outAsync: async () => {}, stdoutIsTTY: () => false, stderrIsTTY: () => false });
    try {
      parseSize('4Q');
    } finally {
      setSink(old);
    }
    assert.is(
      err,
      "Invalid size '4Q'\nYou may use B, K, M, G, T or P suffixes for bytes, kilobytes, megabytes, gigabytes, terabytes and petabytes.\n",
    );
  }),
);

test(
  'parse_copy: replicated and erasure coded',
  timed(() => {
    assert.equal(parseCopy('3'), { copies: 3, copyPolicy: 0 });
    assert.equal(parseCopy('31'), { copies: 31, copyPolicy: 0 });
    assert.equal(parseCopy('4:2'), { copies: 6, copyPolicy: (2 << 4) + 2 });
    assert.equal(parseCopy('16:15'), { copies: 31, copyPolicy: (8 << 4) + 15 });
    assert.is(parseCopy('32').copies, 0);
    assert.is(parseCopy('3:2').copies, 0);
    assert.is(parseCopy('2:16').copies, 0);
    assert.is(parseCopy('2:0').copies, 0);
    assert.is(parseCopy('x').copies, 0);
    assert.is(parseCopy('0').copies, 0);
  }),
);

test(
  'getopt_long: permutation, clusters, attached and separate arguments, diagnostics',
  timed(() => {
    const specs = [
      { ch: 'a', name: 'address', hasArg: true },
      { ch: 'p', name: 'port', hasArg: true },
      { ch: 'r', name: 'raw', hasArg: false },
      { ch: 'P', name: 'prealloc', hasArg: false },
    ];
    const r = getoptLong(['test', '4M', '-rP', '-p7000', '--address=127.0.0.1', 'x', '--', '-r'], specs);
    assert.equal(r.positionals, ['test', '4M', 'x', '-r']);
    assert.equal(
      r.events.map((e) => (e.kind === 'opt' ? `${e.ch}=${e.arg ?? ''}` : 'ERR')),
      ['r=', 'P=', 'p=7000', 'a=127.0.0.1'],
    );
    const p = getoptLong(['--po', '7001', '-a', '-x'], specs);
    assert.equal(p.events[0], { kind: 'opt', ch: 'p', arg: '7001' });
    assert.equal(p.events[1], { kind: 'opt', ch: 'a', arg: '-x' });
    const bad = getoptLong(['-q', '--nope', '--raw=1', '-p', '--raw=1'], specs);
    assert.equal(
      bad.events.map((e) => (e.kind === 'error' ? e.message : `${e.ch}=${e.arg}`)),
      [
        "dog: invalid option -- 'q'\n",
        "dog: unrecognized option '--nope'\n",
        "dog: option '--raw' doesn't allow an argument\n",
        'p=--raw=1', // an option argument is taken whatever it looks like
      ],
    );
    assert.equal(getoptLong(['-p'], specs).events, [{ kind: 'error', message: "dog: option requires an argument -- 'p'\n" }]);
    assert.equal(getoptLong(['--port'], specs).events, [{ kind: 'error', message: "dog: option '--port' requires an argument\n" }]);
    assert.equal(getoptLong(['--p'], specs).events, [
      { kind: 'error', message: "dog: option '--p' is ambiguous; possibilities: '--port' '--prealloc'\n" },
    ]);
  }),
);

test(
  'vdi list lines match tests/functional/030.out',
  timed(() => {
    assert.is(VDI_LIST_HEADER, '  Name        Id    Size    Used  Shared    Creation time   VDI id  Copies  Tag   Block Size Shift\n');
    const base = {
      snapshot: true,
      clone: false,
      name: 'test1',
      snapid: 1,
      size: 10n * MiB,
      used: 12n * MiB,
      shared: 0n,
      ctimeSec: 1_500_000_000n,
      vid: 0xfd32fc,
      copies: 6,
      copyPolicy: 0,
      tag: '',
      blockSizeShift: 22,
    };
    assert.is(filterDate(formatVdiListLine(base, false)), 's test1        1   10 MB   12 MB  0.0 MB DATE   fd32fc      6                22\n');
    assert.is(
      filterDate(formatVdiListLine({ ...base, snapshot: false, snapid: 0, used: 0n, shared: 12n * MiB, vid: 0xfd32fe }, false)),
      '  test1        0   10 MB  0.0 MB   12 MB DATE   fd32fe      6                22\n',
    );
    // tests/functional/043.out
    assert.is(
      filterDate(formatVdiListLine({ ...base, snapshot: false, name: 'test2', snapid: 0, size: 20n * MiB, used: 0n, vid: 0xfd3815 }, false)),
      '  test2        0   20 MB  0.0 MB  0.0 MB DATE   fd3815      6                22\n',
    );
    assert.is(
      filterDate(formatVdiListLine({ ...base, name: 'test5', vid: 0xfd2c30, copies: 3, tag: 'snap' }, false)),
      's test5        1   10 MB   12 MB  0.0 MB DATE   fd2c30      3          snap  22\n',
    );
    assert.is(
      filterDate(formatVdiListLine({ ...base, name: 'test', snapid: 2, used: 0n, shared: 12n * MiB, vid: 0x7c2b26, copies: 3, tag: 'vs2' }, false)),
      's test         2   10 MB  0.0 MB   12 MB DATE   7c2b26      3           vs2  22\n',
    );
    // raw: one space between fields, sizes in bytes, escaped names, empty tag leaves two spaces
    assert.is(
      formatVdiListLine({ ...base, snapshot: false, snapid: 0, name: 'my vdi', used: 4n * MiB, copyPolicy: (2 << 4) + 1, copies: 5 }, true),
      '= my\\ vdi 0 10485760 4194304 0 1500000000 fd32fc 4:1  22\n',
    );
    assert.is(formatVdiListLine({ ...base, snapshot: false, clone: true, snapid: 0 }, true).slice(0, 2), 'c ');
    assert.is(rawEscape('a\\b c\td'), 'a\\\\b\\ c\\\td');
  }),
);

test(
  'cluster info epoch line matches 030.out; ctime format',
  timed(() => {
    const nodes = [7000, 7001, 7002, 7003, 7004, 7005].map((port) => ({
      nid: { addr: '127.0.0.1', port, ioAddr: '', ioPort: 0 },
      nrVnodes: 128,
      zone: 0,
      space: 0n,
    }));
    const log = { ctime: 0n, time: 1_500_000_000n, epoch: 1, disableRecovery: false, nrCopies: 6, copyPolicy: 0, flags: 0, drvName: 'plain', nodes };
    assert.is(
      filterDate(formatEpochLine(log, false)),
      'DATE      1 [127.0.0.1:7000:128, 127.0.0.1:7001:128, 127.0.0.1:7002:128, 127.0.0.1:7003:128, 127.0.0.1:7004:128, 127.0.0.1:7005:128]',
    );
    assert.is(formatEpochLine({ ...log, nodes: nodes.slice(0, 1), epoch: 12 }, true), '1500000000 12 [127.0.0.1:7000:128]');
    assert.match(ctime(1_500_000_000), /^[A-Z][a-z][a-z] [A-Z][a-z][a-z] [ 1-3][0-9] \d\d:\d\d:\d\d \d{4}\n$/);
  }),
);

test(
  'node list line; vm list line; node_id_to_str',
  timed(() => {
    const n = { nid: { addr: '192.168.2.4', port: 7000, ioAddr: '', ioPort: 0 }, nrVnodes: 126, zone: 67807424, space: 0n };
    assert.is(formatNodeListLine(0, n, false), '   0   192.168.2.4:7000    \t126   67807424\n');
    // tests/functional/064.out
    const local = (port: number, nrVnodes: number, zone: number) => ({ nid: { addr: '127.0.0.1', port, ioAddr: '', ioPort: 0 }, nrVnodes, zone, space: 0n });
    assert.is(formatNodeListLine(0, local(7000, 48, 0), false), '   0   127.0.0.1:7000      \t48          0\n');
    assert.is(formatNodeListLine(2, local(7002, 96, 2), false), '   2   127.0.0.1:7002      \t96          2\n');
    assert.is(formatNodeListLine(3, n, true), '3 192.168.2.4:7000 126 67807424\n');
    assert.is(nodeIdToStr(n.nid), 'IPv4 ip:192.168.2.4 port:7000');
    const row = {
      clone: false,
      name: 'vm1',
      vid: 0x1234,
      size: 10n * 1024n * MiB,
      used: 1228n * MiB,
      shared: 10n * MiB,
      copies: 3,
      copyPolicy: 0,
      lockState: 2,
      owners: [{ node: n.nid }],
    };
    assert.is(formatVmListLine(row, false), '  vm1        10 GB  1.2 GB   10 MB      3  192.168.2.4:7000\n');
    assert.is(formatVmListLine({ ...row, lockState: 1, owners: [] }, true), '= vm1 10737418240 1287651328 10485760 3 -\n');
  }),
);

test(
  'vdi tree: branches as in tests/functional/034 (expected results comment)',
  timed(() => {
    const t = new VdiTree();
    // test: three snapshots then the working VDI
    t.add('test', '[2012-08-07 18:04]', 1, 0, false);
    t.add('test', '[2012-08-07 18:04]', 2, 1, false);
    t.add('test', '[2012-08-07 18:04]', 3, 2, false);
    t.add('test', '(you are here)', 4, 3, false);
    // test2: s1 -> s2 -> s3, and a rollback branch s1 -> s4 -> working
    t.add('test2', '[2012-08-07 18:04]', 10, 0, false);
    t.add('test2', '[2012-08-07 18:04]', 11, 10, false);
    t.add('test2', '[2012-08-07 18:04]', 12, 11, false);
    t.add('test2', '[2012-08-07 18:04]', 13, 10, false);
    t.add('test2', '(you are here)', 14, 13, false);
    assert.is(
      t.dump(),
      'test---[2012-08-07 18:04]---[2012-08-07 18:04]---[2012-08-07 18:04]---(you are here)\n' +
        'test2---[2012-08-07 18:04]-+-[2012-08-07 18:04]---[2012-08-07 18:04]\n' +
        '                           `-[2012-08-07 18:04]---(you are here)\n',
    );
    const one = new VdiTree();
    one.add('solo', '(you are here)', 5, 0, false);
    one.add('kid', '(you are here)', 6, 5, false); // a clone: other name, so its own root
    assert.is(one.dump(), 'solo---(you are here)\nkid---(you are here)\n');
  }),
);

test(
  'progress bar layout (show_progress)',
  timed(() => {
    const line = renderProgress(180n * MiB, 400n * MiB, false, 80);
    assert.ok(line.startsWith('\r 45.0 % ['));
    assert.ok(line.includes('] 180 MB / 400 MB'));
    assert.is(line.length, 81);
    assert.ok(renderProgress(4n, 4n, true, 60).endsWith('\n'));
  }),
);

test(
  'main: help, invalid command/subcommand, usage text and exit codes',
  timed(async () => {
    const h = await run([]);
    assert.is(h.code, 0);
    assert.ok(h.out.startsWith('Sheepdog administrator utility'));
    assert.ok(h.out.includes('\n  vdi create              create an image\n'));
    assert.ok(h.out.endsWith("\nFor more information, run 'dog <command> <subcommand> --help'.\n"));

    const bad = await run(['foo']);
    assert.is(bad.code, EXIT_USAGE);
    assert.is(bad.err, "Invalid command 'foo'\nTry 'dog --help' for more information.\n");

    const badSub = await run(['node', 'bar']);
    assert.is(badSub.code, EXIT_USAGE);
    assert.ok(badSub.err.startsWith("Invalid command 'node bar'\nAvailable node commands:\n  node kill\n  node list\n"));

    const u = await run(['vdi', 'create', '-h']);
    assert.is(u.code, 0);
    assert.is(
      u.out,
      'Usage: dog vdi create [-P] [-y] [-c copies] [-a address] [-p port] [-h] [-r] [-v] [-z block_size_shift] [-T] <vdiname> <size>\n' +
        'Options:\n' +
        '  -P, --prealloc          preallocate all the data objects\n' +
        '  -y, --hyper             create a hyper volume\n' +
        '  -c, --copies            specify the data redundancy level\n' +
        '  -a, --address           specify the daemon address (default: localhost)\n' +
        '  -p, --port              specify the daemon port\n' +
        '  -h, --help              display this help and exit\n' +
        '  -r, --raw               raw output mode: omit headers, separate fields with\n' +
        '                          single spaces and print all sizes in decimal bytes\n' +
        '  -v, --verbose           print more information than default\n' +
        '  -z, --block_size_shift  specify the bit shift num for data object size\n' +
        '  -T, --time              show elapsed time\n',
    );

    const obj = await run(['vdi', 'object', '--help']);
    assert.ok(obj.out.startsWith('Usage: dog vdi object {location|map|dump-inode} [-i index] [-s snapshot] [-a address] [-p port] [-h] [-T] <vdiname>\nAvailable subcommands:\n  location                show object location information\n'));

    const opt = await run(['vdi', 'list', '-q']);
    assert.is(opt.code, EXIT_USAGE);
    assert.is(opt.err, "dog: invalid option -- 'q'\nTry 'dog --help' for more information.\n");

    const port = await run(['vdi', 'list', '-p', '70000']);
    assert.is(port.code, EXIT_USAGE);
    assert.is(port.err, "Invalid port number '70000'\n");

    const addr = await run(['vdi', 'list', '-a', 'localhost']);
    assert.is(addr.code, 1);
    assert.is(addr.err, 'Invalid ip address localhost\n');

    const envPort = await run(['vdi', 'list'], { SHEEPDOG_DOG_PORT: 'x7' });
    assert.is(envPort.code, EXIT_USAGE);
    assert.is(envPort.err, "Invalid port number 'x7'\n");

    const copies = await run(['cluster', 'format', '-c', '3:1']);
    assert.is(copies.code, 1);
    assert.ok(copies.err.startsWith('Invalid parameter 3:1\nTo create replicated vdi, set -c x\n  x(1 to 31)   - number of replicated copies\n'));

    const bss = await run(['vdi', 'create', '-z', '19', 'a', '1M']);
    assert.is(bss.code, 1);
    assert.is(bss.err, 'Object Size is larger than 2^20. Please set shift bit larger than 20\n');

    const both = await run(['vdi', 'list', '-r', '-j']);
    assert.is(both.code, EXIT_USAGE);
  }),
);

test(
  'backup stream: header 01000000 92119211, 16-byte record headers, end marker idx 0xffffffff',
  timed(() => {
    assert.is(encodeBackupHeader().toString('hex'), '0100000092119211');
    assert.is(encodeObjBackupHeader(3, 512, 1024).toString('hex'), '03000000' + '00020000' + '00040000' + '00000000');
    assert.is(encodeObjBackupHeader(BACKUP_END_IDX, 0, 0).toString('hex'), 'ffffffff' + '0'.repeat(24));
    const data = Buffer.from('hello');
    const stream = Buffer.concat([encodeBackupHeader(), encodeObjBackupHeader(7, 4096, 5), data, encodeObjBackupHeader(BACKUP_END_IDX, 0, 0)]);
    const p = parseBackupStream(stream);
    assert.is(p.version, 1);
    assert.is(p.magic, 0x11921192);
    assert.ok(p.complete);
    assert.is(p.records.length, 1);
    assert.is(p.records[0]!.idx, 7);
    assert.is(p.records[0]!.offset, 4096);
    assert.ok(p.records[0]!.data.equals(data));
    assert.not.ok(parseBackupStream(stream.subarray(0, stream.length - 1)).complete);
  }),
);

test(
  'compact_obj_backup: drops equal leading and trailing 512-byte sectors',
  timed(() => {
    const size = 1 << 20;
    const from = Buffer.alloc(size, 1);
    const same = Buffer.from(from);
    assert.equal(compactObjBackup(same, from, size), { offset: size, length: 0 });
    const one = Buffer.from(from);
    one[1030] = 9; // sector 2
    assert.equal(compactObjBackup(one, from, size), { offset: 1024, length: 512 });
    const two = Buffer.from(from);
    two[600] = 9; // sector 1
    two[size - 1] = 9; // last sector
    assert.equal(compactObjBackup(two, from, size), { offset: 512, length: size - 512 });
    const first = Buffer.from(from);
    first[0] = 0;
    assert.equal(compactObjBackup(first, from, size), { offset: 0, length: 512 });
    assert.equal(compactObjBackup(Buffer.alloc(size), from, size), { offset: 0, length: size });
  }),
);

test(
  'vote_majority_object: Boyer-Moore vote over the replicas that exist',
  timed(() => {
    const h = (b: number) => ({ found: true, hash: new Uint8Array(20).fill(b) });
    const gone = { found: false, hash: new Uint8Array(20) };
    assert.equal(voteMajority([h(1), h(1), h(1)]), { majority: 0, result: VDI_CHECK_SUCCESS });
    assert.equal(voteMajority([h(2), h(1), h(1)]), { majority: 2, result: VDI_CHECK_SUCCESS });
    assert.equal(voteMajority([h(1), h(2), h(1)]), { majority: 2, result: VDI_CHECK_SUCCESS });
    assert.equal(voteMajority([gone, h(1), h(1)]), { majority: 1, result: VDI_CHECK_SUCCESS });
    assert.equal(voteMajority([gone, gone, h(5)]), { majority: 2, result: VDI_CHECK_SUCCESS });
    assert.equal(voteMajority([h(1), h(2), h(3)]), { majority: -1, result: VDI_CHECK_NO_MAJORITY_FOUND });
    assert.equal(voteMajority([h(1), gone, h(2)]), { majority: -1, result: VDI_CHECK_NO_MAJORITY_FOUND });
    assert.equal(voteMajority([gone, gone, gone]), { majority: -1, result: VDI_CHECK_NO_OBJ_FOUND });
    // 5 copies, 3 agree although the vote's survivor ends with a lead of 1
    assert.equal(voteMajority([h(1), h(2), h(1), h(3), h(1)]).result, VDI_CHECK_SUCCESS);
    assert.equal(voteMajority([h(1), h(2), h(1), h(3), h(1)]).majority, 4);
  }),
);

test(
  'usage of vdi backup / restore / check and cluster check (-h needs no daemon)',
  timed(async () => {
    const b = await run(['vdi', 'backup', '-h']);
    assert.is(b.code, 0);
    assert.is(
      b.out,
      'Usage: dog vdi backup [-s snapshot] [-F from] [-a address] [-p port] [-h] [-T] <vdiname>\n' +
        'Options:\n' +
        '  -s, --snapshot          specify a snapshot id or tag name\n' +
        '  -F, --from              create a differential backup from the snapshot\n' +
        '  -a, --address           specify the daemon address (default: localhost)\n' +
        '  -p, --port              specify the daemon port\n' +
        '  -h, --help              display this help and exit\n' +
        '  -T, --time              show elapsed time\n',
    );
    const r = await run(['vdi', 'restore', '-h']);
    assert.ok(r.out.startsWith('Usage: dog vdi restore [-s snapshot] [-a address] [-p port] [-h] [-T] [-B nr-batched-reclamation] [-I reclamation-interval] <vdiname>\n'));
    const c = await run(['vdi', 'check', '-h']);
    assert.is(
      c.out,
      'Usage: dog vdi check [-s snapshot] [-e] [-a address] [-p port] [-h] [-T] <vdiname>\n' +
        'Options:\n' +
        '  -s, --snapshot          specify a snapshot id or tag name\n' +
        '  -e, --exist             only check objects exist or not,\n' +
        '                          neither comparing nor repairing\n' +
        '  -a, --address           specify the daemon address (default: localhost)\n' +
        '  -p, --port              specify the daemon port\n' +
        '  -h, --help              display this help and exit\n' +
        '  -T, --time              show elapsed time\n',
    );
    const cc = await run(['cluster', 'check', '-h']);
    assert.is(
      cc.out,
      'Usage: dog cluster check [-a address] [-p port] [-h] [-T]\n' +
        'Options:\n' +
        '  -a, --address           specify the daemon address (default: localhost)\n' +
        '  -p, --port              specify the daemon port\n' +
        '  -h, --help              display this help and exit\n' +
        '  -T, --time              show elapsed time\n',
    );
    const help = await run(['--help']);
    assert.match(help.out, /\n {2}vdi check {15}check and repair image's consistency\n/);
    assert.match(help.out, /\n {2}vdi backup {14}create an incremental backup between two snapshots and outputs to STDOUT\n/);
    assert.match(help.out, /\n {2}vdi restore {13}restore snapshot images from a backup provided in STDIN\n/);
    assert.match(help.out, /\n {2}cluster check {11}check and repair cluster\n/);
  }),
);

test.run();
