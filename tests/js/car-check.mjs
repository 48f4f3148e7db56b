// Usage: node car-check.mjs FILE.car
// Reads a CARv1 with @ipld/car, recomputes every block's multihash and exits non-zero,
// naming the block, on the first mismatch (or on a truncated or malformed CAR).
// On success prints one JSON line:
//   {"roots":[CID…],"blocks":N,"bytes":B,"missing":M}
// where N counts blocks, B sums their data lengths, and M counts CIDs that a dag-pb block in the
// CAR links to but that are absent from it (0 for a complete DAG).
import fs from 'node:fs'
import { CarBlockIterator } from '@ipld/car/iterator'
import * as dagPb from '@ipld/dag-pb'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { equals } from 'multiformats/bytes'

const [file] = process.argv.slice(2)
if (file === undefined || process.argv.length > 3) {
  console.error('usage: node car-check.mjs FILE.car')
  process.exit(2)
}
const hashers = new Map([sha256, sha512, identity].map((h) => [h.code, h]))

function fail (message) {
  console.error(`car-check.mjs: ${file}: ${message}`)
  process.exit(1)
}

let iterator
try {
  iterator = await CarBlockIterator.fromIterable(fs.createReadStream(file))
} catch (err) {
  fail(`bad CAR header: ${err.message}`)
}
const roots = (await iterator.getRoots()).map((cid) => cid.toString())
const present = new Set()
const linked = new Set()
let blocks = 0
let bytes = 0
try {
  for await (const { cid, bytes: data } of iterator) {
    const hasher = hashers.get(cid.multihash.code)
    if (hasher === undefined) fail(`block ${cid}: unsupported multihash code 0x${cid.multihash.code.toString(16)}`)
    const digest = await hasher.digest(data)
    if (!equals(digest.bytes, cid.multihash.bytes)) {
      fail(`block ${blocks} (${cid}): hash mismatch, data hashes to ${Buffer.from(digest.digest).toString('hex')}`)
    }
    if (cid.code === dagPb.code) {
      for (const link of dagPb.decode(data).Links) linked.add(link.Hash.toString())
    }
    present.add(cid.toString())
    blocks += 1
    bytes += data.length
  }
} catch (err) {
  fail(`after ${blocks} good blocks: ${err.message}`)
}
let missing = 0
for (const cid of linked) if (!present.has(cid)) missing += 1
console.log(JSON.stringify({ roots, blocks, bytes, missing }))
