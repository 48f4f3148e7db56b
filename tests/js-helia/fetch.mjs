// fetch.mjs MULTIADDR CID OUTFILE [--timeout=SECONDS]
//
// Starts a dial-only Helia node (see node.mjs), dials MULTIADDR
// (/ip4/127.0.0.1/tcp/PORT/p2p/PEERID), and writes `unixfs(helia).cat(CID)` to OUTFILE, fetching
// the blocks over Bitswap 1.2.0 from that peer only. Everything (start, dial, fetch) must finish
// within the timeout (default 60 s).
//
// Exit 0: OUTFILE holds the file; stdout is one JSON line {"bytes":N,"seconds":S}.
// Exit 1: a message on stderr saying what failed (bad arguments, dial refused, peer without
// Bitswap, timeout with how far it got, a block that did not verify…); OUTFILE is removed.

import { createWriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { once } from 'node:events'
import { unixfs } from '@helia/unixfs'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { BITSWAP, describeError, die, startHelia } from './node.mjs'

const SCRIPT = 'fetch.mjs'
const USAGE = `usage: ${SCRIPT} MULTIADDR CID OUTFILE [--timeout=SECONDS]`

const positional = []
let timeoutSecs = 60
for (const a of process.argv.slice(2)) {
  if (a.startsWith('--timeout=')) {
    timeoutSecs = Number(a.slice('--timeout='.length))
    if (!(timeoutSecs > 0)) die(SCRIPT, `bad ${a}\n${USAGE}`)
  } else if (a.startsWith('--')) {
    die(SCRIPT, `unknown option ${a}\n${USAGE}`)
  } else {
    positional.push(a)
  }
}
if (positional.length !== 3) die(SCRIPT, USAGE)
const [addrText, cidText, outFile] = positional

let addr, cid
try {
  addr = multiaddr(addrText)
} catch (err) {
  die(SCRIPT, `bad MULTIADDR ${JSON.stringify(addrText)}: ${describeError(err)}`)
}
try {
  cid = CID.parse(cidText)
} catch (err) {
  die(SCRIPT, `bad CID ${JSON.stringify(cidText)}: ${describeError(err)}`)
}

const started = Date.now()
const elapsed = () => ((Date.now() - started) / 1000).toFixed(2)
const signal = AbortSignal.timeout(timeoutSecs * 1000)

// What we know, for the failure message.
const state = {
  phase: 'starting Helia',
  bytes: 0,
  blocks: 0,
  identified: null, // protocols the peer listed in identify
  closed: false
}
function report () {
  const lines = [`phase: ${state.phase}; after ${elapsed()} s; ${state.bytes} bytes written, ${state.blocks} blocks received over Bitswap`]
  if (state.phase !== 'starting Helia' && state.phase !== 'dialling') {
    if (state.identified == null) {
      lines.push('the peer has not completed identify')
    } else if (!state.identified.includes(BITSWAP)) {
      lines.push(`the peer does not list ${BITSWAP} in identify; it offers: ${state.identified.join(' ') || '(nothing)'}`)
    } else {
      lines.push(`the peer lists ${BITSWAP} in identify`)
    }
    if (state.closed) lines.push('the connection to the peer was closed')
  }
  return lines.join('\n  ')
}

let out = null
async function fail (msg) {
  if (out != null) {
    out.destroy()
    await rm(outFile, { force: true }).catch(() => {})
  }
  die(SCRIPT, `${msg}\n  ${report()}`)
}

// A last resort if something ignores the abort signal: never hang past the deadline.
const hardStop = setTimeout(() => {
  fail(`timed out after ${timeoutSecs} s fetching ${cidText} from ${addrText} (hard stop)`)
}, timeoutSecs * 1000 + 5000)

let helia
try {
  helia = await startHelia([])
} catch (err) {
  await fail(`cannot start Helia: ${describeError(err)}`)
}

const peerId = addr.getComponents().find(c => c.name === 'p2p')?.value
helia.libp2p.addEventListener('peer:identify', (evt) => {
  if (peerId == null || evt.detail.peerId.toString() === peerId) {
    state.identified = evt.detail.protocols
  }
})
helia.libp2p.addEventListener('peer:disconnect', (evt) => {
  if (peerId == null || evt.detail.toString() === peerId) state.closed = true
})

try {
  state.phase = 'dialling'
  const conn = await helia.libp2p.dial(addr, { signal })
  state.phase = 'fetching'
  process.stderr.write(`${SCRIPT}: connected to ${conn.remotePeer} at ${conn.remoteAddr} after ${elapsed()} s\n`)
} catch (err) {
  await fail(signal.aborted
    ? `timed out after ${timeoutSecs} s dialling ${addrText}`
    : `cannot dial ${addrText}: ${describeError(err)}`)
}

try {
  out = createWriteStream(outFile)
  await once(out, 'open')
  const onProgress = (evt) => {
    if (evt.type === 'bitswap:block') state.blocks++
  }
  for await (const chunk of unixfs(helia).cat(cid, { signal, onProgress })) {
    state.bytes += chunk.byteLength
    if (!out.write(chunk)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
} catch (err) {
  await fail(signal.aborted
    ? `timed out after ${timeoutSecs} s fetching ${cidText} from ${addrText}`
    : `fetching ${cidText} from ${addrText} failed: ${describeError(err)}`)
}

const seconds = Number(elapsed())
process.stderr.write(`${SCRIPT}: fetched ${state.bytes} bytes of ${cidText} (${state.blocks} blocks over Bitswap) in ${seconds} s\n`)
process.stdout.write(JSON.stringify({ bytes: state.bytes, seconds }) + '\n')
clearTimeout(hardStop)
// Stopping must not turn a success into a hang.
await Promise.race([helia.stop(), new Promise(resolve => setTimeout(resolve, 5000).unref())])
process.exit(0)
