// Actor addresses and their stable placement on shards.

/** An actor's address: its kind (which machine) and an id unique within that kind. */
export interface Address {
  readonly kind: string;
  readonly id: string;
}

export function addressKey(addr: Address): string {
  return `${addr.kind}/${addr.id}`;
}

export function parseAddressKey(key: string): Address {
  const slash = key.indexOf('/');
  if (slash <= 0) throw new Error(`malformed actor address "${key}" (expected kind/id)`);
  return { kind: key.slice(0, slash), id: key.slice(slash + 1) };
}

/** FNV-1a 32-bit over the UTF-16 code units of the key: stable across runs, threads and machines. */
export function stableHash32(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Which of `shardCount` shards an address lives on. */
export function shardOf(addr: Address, shardCount: number): number {
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new Error(`shard count must be a positive integer, got ${shardCount}`);
  return stableHash32(addressKey(addr)) % shardCount;
}
