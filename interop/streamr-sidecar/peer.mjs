// A StreamrClient config with the node's own peer descriptor fixed (node id,
// WebSocket host and port). With a peer descriptor given, Streamr's DHT uses
// it as is and does not look its region up (it otherwise asks CDNs over the
// internet); the port is picked free on the host, inside the config's
// websocketPortRange when there is one. The SDK's config has no region field,
// so such a node has none.
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'

function tryPort(host, port) {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(undefined))
    server.listen(port, host, () => {
      const bound = server.address().port
      server.close(() => resolve(bound))
    })
  })
}

async function freePort(host, range) {
  if (range === undefined || range === null) {
    const port = await tryPort(host, 0)
    if (port !== undefined) return port
  } else {
    for (let port = range.min; port <= range.max; port++) {
      if ((await tryPort(host, port)) !== undefined) return port
    }
  }
  throw new Error(`no free WebSocket port on ${host}`)
}

// Returns `config` with `network.controlLayer.peerDescriptor` set, unless
// the config has one already.
export async function withFixedPeer(config) {
  const layer = { ...(config.network?.controlLayer ?? {}) }
  if (layer.peerDescriptor !== undefined) return config
  const host = layer.websocketHost ?? '127.0.0.1'
  const port = await freePort(host, layer.websocketPortRange)
  layer.websocketHost = host
  layer.websocketPortRange = { min: port, max: port }
  layer.peerDescriptor = {
    nodeId: randomBytes(20).toString('hex'),
    websocket: { host, port, tls: layer.websocketServerEnableTls ?? false },
  }
  return { ...config, network: { ...(config.network ?? {}), controlLayer: layer } }
}
