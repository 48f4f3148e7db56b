// probe.mjs MODE MULTIADDR [ARGS…]
//
// A hostile, non-member js-libp2p peer (the libp2p of the Helia stack: TCP + noise + yamux +
// identify, nothing else) that speaks raw bytes on a shubnet node's protocols. It prints one JSON
// line on stdout with what happened, and exits 0 unless it could not even dial.
//
// Modes:
//   sync-frame MULTIADDR [--mib=20]
//     Opens /shubnet/sync/1 and sends a frame header announcing MIB MiB, then the body in
//     64 KiB pieces, each only after the previous one left the local buffer. Prints
//     {"announced":N,"sent":N,"reset":bool,"error":"…","response":"…"}: `sent` is how many
//     body bytes yamux took before the stream closed, `response` the printable text of
//     whatever the node answered.
//   protocols MULTIADDR PROTOCOL…
//     Opens one stream per PROTOCOL, each negotiated fully (multistream-select must confirm
//     it), and closes it at once without sending a byte. Prints {"PROTOCOL":"accepted" or
//     "refused: …", …}.
//   bitswap-flood MULTIADDR CID [--streams=10] [--wants=1024] [--have]
//     Opens STREAMS /ipfs/bitswap/1.2.0 streams at once, each carrying one message that wants
//     CID WANTS times (want-block, or want-have with --have), and reads every answer the node
//     sends back on its own streams. Waits until no answer byte arrived for 3 s (or 120 s in
//     all). Prints {"streams":N,"wants":N,"requestBytes":N,"answerBytes":N,"answerStreams":N,
//     "errors":[…]}, `errors` saying why a stream of the flood could not be sent.

import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { BITSWAP, describeError, die } from './node.mjs'

const SCRIPT = 'probe.mjs'
const USAGE = `usage: ${SCRIPT} sync-frame MULTIADDR [--mib=N] | protocols MULTIADDR PROTOCOL… | bitswap-flood MULTIADDR CID [--streams=N] [--wants=N] [--have]`

const positional = []
const opts = { mib: 20, streams: 10, wants: 1024, have: false }
for (const a of process.argv.slice(2)) {
  const m = /^--(mib|streams|wants)=(\d+)$/.exec(a)
  if (m != null) {
    opts[m[1]] = Number(m[2])
  } else if (a === '--have') {
    opts.have = true
  } else if (a.startsWith('--')) {
    die(SCRIPT, `unknown option ${a}\n${USAGE}`)
  } else {
    positional.push(a)
  }
}
const [mode, addrText, cidText] = positional
if (mode == null || addrText == null) die(SCRIPT, USAGE)
let addr
try {
  addr = multiaddr(addrText)
} catch (err) {
  die(SCRIPT, `bad MULTIADDR ${JSON.stringify(addrText)}: ${describeError(err)}`)
}

const libp2p = await createLibp2p({
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
})

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

/** Protobuf varint. */
function varint (n) {
  const out = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return Uint8Array.from(out)
}

function concat (parts) {
  const len = parts.reduce((s, p) => s + p.length, 0)
  const out = new Uint8Array(len)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** A length-delimited protobuf field. */
function field (tag, bytes) {
  return concat([Uint8Array.of((tag << 3) | 2), varint(bytes.length), bytes])
}

async function syncFrame () {
  const announced = opts.mib * 1024 * 1024
  const stream = await libp2p.dialProtocol(addr, '/shubnet/sync/1')
  const result = { announced, sent: 0, reset: false, error: null, response: '' }
  const received = []
  stream.addEventListener('message', (evt) => {
    received.push(evt.data.subarray())
  })
  const closed = new Promise(resolve => {
    stream.addEventListener('close', (evt) => {
      if (evt.error != null) {
        result.reset = true
        result.error = describeError(evt.error)
      }
      resolve()
    })
  })
  const header = new Uint8Array(4)
  new DataView(header.buffer).setUint32(0, announced)
  const piece = new Uint8Array(64 * 1024).fill(0x5a)
  try {
    stream.send(header)
    while (result.sent < announced) {
      const n = Math.min(piece.length, announced - result.sent)
      const more = stream.send(piece.subarray(0, n))
      if (!more) {
        await Promise.race([stream.onDrain(), closed.then(() => { throw new Error('closed') })])
      }
      result.sent += n
    }
    await stream.close()
  } catch (err) {
    result.error ??= describeError(err)
  }
  await Promise.race([closed, sleep(10_000)])
  const text = Buffer.concat(received.map(b => Buffer.from(b))).toString('latin1')
  result.response = text.replace(/[^\x20-\x7e]/g, '.')
  return result
}

async function protocols () {
  const names = positional.slice(2)
  if (names.length === 0) die(SCRIPT, USAGE)
  const conn = await libp2p.dial(addr)
  const result = {}
  for (const name of names) {
    try {
      const s = await conn.newStream(name, { negotiateFully: true, runOnLimitedConnection: true })
      result[name] = 'accepted'
      await s.close()
    } catch (err) {
      result[name] = `refused: ${describeError(err)}`
    }
  }
  return result
}

async function bitswapFlood () {
  if (cidText == null) die(SCRIPT, USAGE)
  let cid
  try {
    cid = CID.parse(cidText)
  } catch (err) {
    die(SCRIPT, `bad CID ${JSON.stringify(cidText)}: ${describeError(err)}`)
  }
  let answerBytes = 0
  let answerStreams = 0
  let last = Date.now()
  await libp2p.handle(BITSWAP, async (stream) => {
    answerStreams++
    try {
      for await (const chunk of stream) {
        answerBytes += chunk.byteLength
        last = Date.now()
      }
    } catch {}
  }, { maxInboundStreams: 4096, runOnLimitedConnection: true })

  // Entry: block (1), priority (2), wantType (4: 0 block, 1 have), sendDontHave (5).
  const entry = field(1, concat([
    field(1, cid.bytes),
    Uint8Array.of(0x10, 0x01, 0x20, opts.have ? 1 : 0, 0x28, 0x01)
  ]))
  const entries = new Array(opts.wants).fill(entry)
  const message = field(1, concat(entries))
  const framed = concat([varint(message.length), message])

  const conn = await libp2p.dial(addr)
  const sends = []
  const errors = []
  for (let i = 0; i < opts.streams; i++) {
    sends.push((async () => {
      try {
        const s = await conn.newStream(BITSWAP, { maxOutboundStreams: 4096, runOnLimitedConnection: true })
        if (!s.send(framed)) await s.onDrain()
        await s.close()
      } catch (err) {
        errors.push(describeError(err))
      }
    })())
  }
  await Promise.all(sends)
  last = Date.now()
  const start = Date.now()
  while (Date.now() - last < 3000 && Date.now() - start < 120_000) {
    await sleep(200)
  }
  return {
    streams: opts.streams,
    wants: opts.wants,
    requestBytes: framed.length * opts.streams,
    answerBytes,
    answerStreams,
    errors
  }
}

let result
try {
  if (mode === 'sync-frame') {
    result = await syncFrame()
  } else if (mode === 'protocols') {
    result = await protocols()
  } else if (mode === 'bitswap-flood') {
    result = await bitswapFlood()
  } else {
    die(SCRIPT, USAGE)
  }
} catch (err) {
  die(SCRIPT, `${mode} against ${addrText}: ${describeError(err)}`)
}
process.stdout.write(JSON.stringify(result) + '\n')
await libp2p.stop()
process.exit(0)
