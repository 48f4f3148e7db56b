// serve.mjs FILE [--chunk-size=N --max-links=N] [--listen=MULTIADDR]
//
// Starts a Helia node (see node.mjs) listening on /ip4/127.0.0.1/tcp/0, adds FILE with
// @helia/unixfs, prints one JSON line to stdout
//
//   {"multiaddr":"/ip4/127.0.0.1/tcp/PORT/p2p/PEERID","cid":"bafy…","bytes":N}
//
// and then serves its blocks over Bitswap 1.2.0 until stdin closes, or SIGTERM / SIGINT; then it
// stops and exits 0. Diagnostics go to stderr.
//
// FILE is added as a single file, not wrapped in a directory, with kubo's
// `ipfs add --cid-version=1` settings: CIDv1, raw leaves, 256 KiB fixed chunks, balanced DAG of
// at most 174 links. These are passed explicitly: the defaults of @helia/unixfs 8 are NOT kubo's
// (they are 1 MiB chunks and 1024 links, and addFile wraps the file in a directory).
// --chunk-size / --max-links change the layout (e.g. 1048576 / 1024 for Helia's own defaults).

import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { unixfs } from '@helia/unixfs'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { describeError, die, startHelia } from './node.mjs'

const SCRIPT = 'serve.mjs'
const USAGE = `usage: ${SCRIPT} FILE [--chunk-size=N --max-links=N] [--listen=MULTIADDR]`

const positional = []
let chunkSize = 262144
let maxLinks = 174
let listen = '/ip4/127.0.0.1/tcp/0'
for (const a of process.argv.slice(2)) {
  const [k, v] = a.split('=', 2)
  if (k === '--chunk-size' || k === '--max-links') {
    const n = Number(v)
    if (!Number.isInteger(n) || n < 1) die(SCRIPT, `bad ${a}\n${USAGE}`)
    if (k === '--chunk-size') chunkSize = n
    else maxLinks = n
  } else if (k === '--listen' && v) {
    listen = v
  } else if (a.startsWith('--')) {
    die(SCRIPT, `unknown option ${a}\n${USAGE}`)
  } else {
    positional.push(a)
  }
}
if (positional.length !== 1) die(SCRIPT, USAGE)
const [file] = positional

let size
try {
  const st = await stat(file)
  if (!st.isFile()) die(SCRIPT, `${file} is not a regular file`)
  size = st.size
} catch (err) {
  die(SCRIPT, `cannot read ${file}: ${describeError(err)}`)
}

let helia
try {
  helia = await startHelia([listen])
} catch (err) {
  die(SCRIPT, `cannot start Helia listening on ${listen}: ${describeError(err)}`)
}

let cid
try {
  cid = await unixfs(helia).addByteStream(createReadStream(file), {
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize }),
    layout: balanced({ maxChildrenPerNode: maxLinks })
  })
} catch (err) {
  await helia.stop().catch(() => {})
  die(SCRIPT, `adding ${file}: ${describeError(err)}`)
}

const addrs = helia.libp2p.getMultiaddrs().map(String)
if (addrs.length === 0) {
  await helia.stop().catch(() => {})
  die(SCRIPT, `Helia is not listening on anything (asked for ${listen})`)
}
process.stdout.write(JSON.stringify({ multiaddr: addrs[0], cid: cid.toString(), bytes: size }) + '\n')
process.stderr.write(`${SCRIPT}: serving ${file} (${size} bytes) as ${cid} at ${addrs.join(' ')}\n`)

helia.libp2p.addEventListener('peer:connect', (evt) => {
  process.stderr.write(`${SCRIPT}: peer connected: ${evt.detail}\n`)
})

let stopping = false
async function shutdown (why) {
  if (stopping) return
  stopping = true
  process.stderr.write(`${SCRIPT}: ${why}; stopping\n`)
  await Promise.race([
    helia.stop().catch(err => process.stderr.write(`${SCRIPT}: stop: ${describeError(err)}\n`)),
    new Promise(resolve => setTimeout(resolve, 5000).unref())
  ])
  process.exit(0)
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
process.stdin.on('end', () => shutdown('stdin closed'))
process.stdin.on('error', () => shutdown('stdin error'))
process.stdin.resume()
