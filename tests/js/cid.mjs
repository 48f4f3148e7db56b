// Usage: node cid.mjs FILE [CHUNK_SIZE MAX_LINKS]
// Prints the root CID that ipfs-unixfs-importer computes for FILE with kubo's
// `ipfs add --cid-version=1` settings (256 KiB fixed chunks, raw leaves, balanced, 174 links),
// or with the given chunk size and links per node. Nothing is stored.
import fs from 'node:fs'
import { importer } from 'ipfs-unixfs-importer'
import { fileBytes, importerOptions, positiveInt } from './importer-options.mjs'

const [file, chunkArg, linksArg] = process.argv.slice(2)
if (file === undefined || process.argv.length > 5 || (chunkArg !== undefined && linksArg === undefined)) {
  console.error('usage: node cid.mjs FILE [CHUNK_SIZE MAX_LINKS]')
  process.exit(2)
}
const chunkSize = positiveInt(chunkArg, 'CHUNK_SIZE', undefined)
const maxLinks = positiveInt(linksArg, 'MAX_LINKS', undefined)

// Blocks are hashed but thrown away.
const blockstore = { put: async (cid) => cid }
let root
for await (const entry of importer([{ content: fileBytes(fs, file) }], blockstore, importerOptions(chunkSize, maxLinks))) {
  root = entry.cid
}
if (root === undefined) {
  console.error(`cid.mjs: importer yielded nothing for ${file}`)
  process.exit(1)
}
console.log(root.toString())
