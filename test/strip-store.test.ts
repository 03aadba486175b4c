// Store keys of EC strips (src/store/strip-key.ts) and the object store's strip files: named
// <oid>_<ec_index> in either layout, listed back as keys, set aside as <oid>_<idx>.<epoch>.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ObjectStore } from '../src/store/object-store.js';
import { isStripKey, keyName, keyOid, keyStripIndex, parseKeyName, stripKey } from '../src/store/strip-key.js';
import { dataOidIndex, isDataObj, oidToVid, vidToDataOid } from '../src/proto/oid.js';
import { removeDir, tempDir } from './helpers.js';

const oid = vidToDataOid(0x7c2b25, 3);

test('strip keys keep the oid bits: oid helpers still work, names are Sheepdog\'s', () => {
  const k = stripKey(oid, 5);
  assert.ok(isStripKey(k));
  assert.not.ok(isStripKey(oid));
  assert.is(keyOid(k), oid);
  assert.is(keyStripIndex(k), 5);
  assert.is(keyStripIndex(oid), -1);
  assert.is(oidToVid(k), 0x7c2b25);
  assert.is(dataOidIndex(k), 3);
  assert.ok(isDataObj(k));
  assert.is(keyName(k), '007c2b2500000003_5');
  assert.is(parseKeyName('007c2b2500000003_5'), k);
  assert.is(parseKeyName('007c2b2500000003'), oid);
  for (const bad of ['007c2b2500000003_31', '007c2b2500000003_', '7c2b2500000003_1', '007c2b2500000003.tmp1']) assert.is(parseKeyName(bad), null, bad);
  assert.throws(() => stripKey(oid, 31), /ec_index/);
  assert.throws(() => stripKey(oid, -1), /ec_index/);
  assert.throws(() => stripKey(1n << 64n, 0), /u64/);
});

test('object store: strip files in both layouts, listed and set aside as keys', async () => {
  for (const layout of ['plain', 'tree'] as const) {
    const dir = tempDir('sheep-strips-');
    const store = new ObjectStore(dir, { noSync: true });
    try {
      await store.init();
      store.setLayout(layout);
      const k0 = stripKey(oid, 0);
      const k2 = stripKey(oid, 2);
      await store.create(k0, 1024, Buffer.from('strip zero'), 0);
      await store.create(k2, 1024, Buffer.from('strip two'), 100);
      await store.create(oid, 4096, Buffer.from('whole'), 0);
      const where = layout === 'plain' ? join(dir, 'obj') : join(dir, 'obj', '25');
      assert.ok(existsSync(join(where, '007c2b2500000003_0')), `${layout}: strip file name`);
      assert.equal((await store.list()).map(String).sort(), [oid, k0, k2].map(String).sort());
      assert.is((await store.read(k2, 100, 9)).toString(), 'strip two');
      assert.is(await store.size(k0), 1024);
      await store.moveToStale(k2, 7);
      assert.ok(readdirSync(join(dir, 'obj', '.stale')).includes('007c2b2500000003_2.7'));
      assert.equal((await store.listStale()).map(String), [String(k2)]);
      assert.is((await store.readStale(k2, 109)).data.subarray(100).toString(), 'strip two');
      await store.remove(k0);
      assert.not.ok(await store.exists(k0));
      assert.ok(await store.exists(oid), 'the whole object is another key');
    } finally {
      await store.close();
      removeDir(dir);
    }
  }
});

test.run();
