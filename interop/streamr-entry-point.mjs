// A private Streamr network's entry point, for tests: one trackerless-network
// node (Streamr's own @streamr/trackerless-network, as a Streamr node runs it)
// with a WebSocket server on 127.0.0.1, which every other node of the test
// network bootstraps from.
//
//   node -r ./interop/loopback-only.cjs interop/streamr-entry-point.mjs [--port N]
//       -> {"nodeId":"<40 hex>","websocket":{"host":"127.0.0.1","port":N,"tls":false}}
//
// Prints the line above (an SDK `network.controlLayer.entryPoints` item) once
// listening, then runs until killed or until stdin closes. Without --port a
// free port is picked.
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import './streamr-logs.mjs' // first: Streamr's logs to stderr
import { createNetworkNode } from '@streamr/trackerless-network'
import { NodeType, toDhtAddressRaw } from '@streamr/dht'

const args = process.argv.slice(2)
const portArg = args.indexOf('--port')

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    }).on('error', reject)
  })
}

const port = portArg >= 0 ? Number(args[portArg + 1]) : await freePort()
const nodeId = randomBytes(20).toString('hex')
const websocket = { host: '127.0.0.1', port, tls: false }
// Region given, so no CDN or GeoIP lookup runs; no ICE servers (no WebRTC).
const descriptor = { nodeId: toDhtAddressRaw(nodeId), type: NodeType.NODEJS, websocket, region: 0 }
const node = createNetworkNode({
  layer0: {
    entryPoints: [descriptor],
    peerDescriptor: descriptor,
    websocketHost: '127.0.0.1',
    websocketPortRange: { min: port, max: port },
    websocketServerEnableTls: false,
    iceServers: [],
  },
})
await node.start()
process.stdout.write(JSON.stringify({ nodeId, websocket }) + '\n')

const stop = async () => {
  await node.stop().catch(() => {})
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.resume()
