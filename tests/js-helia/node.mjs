// The Helia node both scripts use: unmodified Helia built with the light constructors, so it
// contacts nothing but the addresses it is given (no bootstrap, no DHT, no delegated routing,
// no mDNS, no UPnP, no relay, no autoTLS). Transports: TCP + noise + yamux + identify; block
// exchange: Bitswap 1.2.0 (@helia/bitswap).

import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createHeliaLight } from 'helia'

/** The protocol id Helia's Bitswap speaks (and the only one it dials). */
export const BITSWAP = '/ipfs/bitswap/1.2.0'

/**
 * A started Helia node listening on `listen` (none: dial-only).
 *
 * @param {string[]} listen
 */
export async function startHelia (listen = []) {
  const helia = withBitswap(withLibp2pLight(createHeliaLight(), {
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  }))
  await helia.start()
  return helia
}

/** Prints `SCRIPT: error: MSG` on stderr and exits 1. */
export function die (script, msg) {
  process.stderr.write(`${script}: error: ${msg}\n`)
  process.exit(1)
}

/** An error as one readable line (with its cause chain, which libp2p uses a lot). */
export function describeError (err) {
  const parts = []
  for (let e = err; e != null && parts.length < 5; e = e.cause) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e))
  }
  return parts.join(' <- ')
}
