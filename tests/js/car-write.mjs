// Usage: node car-write.mjs FILE OUT.car [--order=dfs|import] [--chunk-size=N --max-links=N]
// Imports FILE with ipfs-unixfs-importer (kubo `--cid-version=1` settings unless the chunk size
// and links per node are given) into an in-memory blockstore and writes a CARv1 with @ipld/car's
// CarWriter whose single root is the file's root.
// Block order: `dfs` (default) walks the DAG root first, depth first, as gateways and
// `ipfs dag export` do; `import` keeps the importer's order (leaves before their parents).
// Prints the root CID.
import fs from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { CarWriter } from '@ipld/car/writer'
import * as dagPb from '@ipld/dag-pb'
import { importer } from 'ipfs-unixfs-importer'
import { fileBytes, importerOptions, positiveInt } from './importer-options.mjs'

const USAGE = 'usage: node car-write.mjs FILE OUT.car [--order=dfs|import] [--chunk-size=N --max-links=N]'
const positional = []
const flags = {}
for (const arg of process.argv.slice(2)) {
  const m = /^--([a-z-]+)=(.*)$/.exec(arg)
  if (m === null) positional.push(arg)
  else flags[m[1]] = m[2]
}
const [file, out] = positional
const order = flags.order ?? 'dfs'
const known = ['order', 'chunk-size', 'max-links']
if (positional.length !== 2 || !['dfs', 'import'].includes(order) ||
    Object.keys(flags).some((k) => !known.includes(k)) ||
    (flags['chunk-size'] === undefined) !== (flags['max-links'] === undefined)) {
  console.error(USAGE)
  process.exit(2)
}
const chunkSize = positiveInt(flags['chunk-size'], '--chunk-size', undefined)
const maxLinks = positiveInt(flags['max-links'], '--max-links', undefined)

const blocks = new Map() // CID string -> { cid, bytes }, in insertion order
const blockstore = {
  put: async (cid, bytes) => {
    blocks.set(cid.toString(), { cid, bytes })
    return cid
  }
}
let root
for await (const entry of importer([{ content: fileBytes(fs, file) }], blockstore, importerOptions(chunkSize, maxLinks))) {
  root = entry.cid
}
if (root === undefined || !blocks.has(root.toString())) {
  console.error(`car-write.mjs: importer gave no root block for ${file}`)
  process.exit(1)
}

function * dfs (cid) {
  const block = blocks.get(cid.toString())
  if (block === undefined) throw new Error(`block ${cid} missing from the importer's output`)
  yield block
  if (cid.code === dagPb.code) {
    for (const link of dagPb.decode(block.bytes).Links) yield * dfs(link.Hash)
  }
}

const { writer, out: carBytes } = CarWriter.create([root])
const done = pipeline(Readable.from(carBytes), fs.createWriteStream(out))
const seen = new Set()
for (const block of order === 'dfs' ? dfs(root) : blocks.values()) {
  const key = block.cid.toString()
  if (seen.has(key)) continue // dups=n: a repeated leaf is written once
  seen.add(key)
  await writer.put(block)
}
await writer.close()
await done
console.log(root.toString())
