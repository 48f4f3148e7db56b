// Importer settings that reproduce kubo's `ipfs add --cid-version=1`
// (docs: /work/shared/reference/ipfs-interop.md §1.1, §1.5). Shared by cid.mjs and car-write.mjs.
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

export const DEFAULT_CHUNK_SIZE = 262144
export const DEFAULT_MAX_LINKS = 174

/** Parses an optional positive integer argument, exiting loudly on garbage. */
export function positiveInt (value, name, fallback) {
  if (value === undefined) return fallback
  if (!/^[1-9][0-9]*$/.test(value)) {
    console.error(`${name} must be a positive integer, got ${JSON.stringify(value)}`)
    process.exit(2)
  }
  return Number(value)
}

/** Options for `importer()`: CIDv1, raw leaves, fixed-size chunks, balanced layout. */
export function importerOptions (chunkSize = DEFAULT_CHUNK_SIZE, maxLinks = DEFAULT_MAX_LINKS) {
  return {
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize }),
    layout: balanced({ maxChildrenPerNode: maxLinks })
  }
}

/** Streams a file in 1 MiB reads (the chunker re-slices them). */
export async function * fileBytes (fs, path) {
  for await (const buf of fs.createReadStream(path, { highWaterMark: 1 << 20 })) {
    yield new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
  }
}
