// The Streamr bridge's sidecar: Streamr's own SDK (@streamr/sdk, pinned in
// interop/package-lock.json) on one side, `vouch bridge streamr` on the other.
// Thin on purpose: the Rust bridge decides what crosses, keeps the cursor,
// supervises this process and restarts it; the sidecar only injects
// pre-signed messages into the Streamr network (`publishRaw`, no re-signing:
// it holds no key of anyone's) and hands raw messages of the subscribed
// stream parts back, unvalidated (the bridge's validation pipeline decides).
//
// Protocol: one JSON object per line, both ways; message bytes are a Streamr
// StreamMessage protobuf in base64. stdin (bridge -> sidecar):
//   {"type":"start","client":{StreamrClient config},"fixed_peer":bool,"subscribe":[{"stream","partition"}],
//    "min_neighbors":1,"confirm_timeout_ms":10000,"max_out_bytes":8388608}   (first line;
//    fixed_peer: pick the node's own peer descriptor, see peer.mjs)
//   {"type":"publish","id":N,"msg":B64}      {"type":"ping","id":N}
// stdout (sidecar -> bridge):
//   {"type":"ready","node_id","websocket"}   once connected and subscribed
//   {"type":"published","id":N}              handed to the local Streamr node with
//                                            at least min_neighbors neighbors on its stream part
//   {"type":"failed","id":N,"error","retry":bool}
//   {"type":"pong","id":N,"stats":{...}}     {"type":"message","stream","partition","msg":B64}
// End of stdin: the client is destroyed and the process exits 0. Streamr's
// logs go to stderr (JSON lines, LOG_LEVEL, default warn), never to stdout.
import { createInterface } from 'node:readline'
import '../streamr-logs.mjs' // first: Streamr's logs to stderr, stdout is the protocol's
import { StreamrClient, convertBytesToStreamMessage, convertStreamMessageToBytes } from '@streamr/sdk'
import { withFixedPeer } from './peer.mjs'

const stats = { published: 0, failed: 0, received: 0, dropped_inbound: 0 }
let settings
let client
let node
const joined = new Map() // stream part id -> promise of the join with enough neighbors

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function fatal(error) {
  send({ type: 'error', error: String(error?.message ?? error) })
  process.exit(1)
}

async function start(msg) {
  settings = {
    min_neighbors: msg.min_neighbors ?? 1,
    confirm_timeout_ms: msg.confirm_timeout_ms ?? 10000,
    max_out_bytes: msg.max_out_bytes ?? 8 * 1024 * 1024,
  }
  const config = msg.client ?? {}
  client = new StreamrClient(msg.fixed_peer ? await withFixedPeer(config) : config)
  await client.connect()
  node = client.getNode()
  for (const { stream, partition } of msg.subscribe ?? []) {
    await client.subscribe({ id: stream, partition, raw: true }, (_content, metadata) => {
      stats.received++
      // Inbound is bounded by what stdout may hold: beyond it messages are
      // dropped here and counted (the bridge exports the count).
      if (process.stdout.writableLength > settings.max_out_bytes) {
        stats.dropped_inbound++
        return
      }
      const bytes = convertStreamMessageToBytes(metadata.streamMessage)
      send({ type: 'message', stream, partition, msg: Buffer.from(bytes).toString('base64') })
    })
  }
  const descriptor = await client.getPeerDescriptor()
  send({ type: 'ready', node_id: await client.getNodeId(), websocket: descriptor.websocket ?? null })
}

// Waits until the stream part has enough neighbors to hand a message to.
async function neighbors(streamPartId) {
  const enough = () => node.getNeighbors(streamPartId).then((n) => n.length >= settings.min_neighbors)
  let join = joined.get(streamPartId)
  if (join === undefined) {
    join = node.join(streamPartId, { minCount: settings.min_neighbors, timeout: settings.confirm_timeout_ms })
    joined.set(streamPartId, join)
    join.catch(() => joined.delete(streamPartId))
  }
  await join
  const deadline = Date.now() + settings.confirm_timeout_ms
  while (!(await enough())) {
    if (Date.now() > deadline) throw new Error(`no neighbors on ${streamPartId}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function publish({ id, msg }) {
  let message
  try {
    message = convertBytesToStreamMessage(Buffer.from(msg, 'base64'))
  } catch (e) {
    stats.failed++
    send({ type: 'failed', id, error: `not a StreamMessage: ${e.message}`, retry: false })
    return
  }
  try {
    await neighbors(`${message.getStreamId()}#${message.getStreamPartition()}`)
    await client.publishRaw(message)
    stats.published++
    send({ type: 'published', id })
  } catch (e) {
    stats.failed++
    send({ type: 'failed', id, error: String(e?.message ?? e), retry: true })
  }
}

// Publishes run one after another, in the order the bridge sent them, so a
// message chain reaches the network in order.
let queue = Promise.resolve()
let started
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', (line) => {
  let msg
  try {
    msg = JSON.parse(line)
  } catch {
    fatal(`not JSON: ${line.slice(0, 80)}`)
  }
  if (started === undefined) {
    if (msg.type !== 'start') fatal('the first line must be {"type":"start",...}')
    started = start(msg).catch(fatal)
    return
  }
  switch (msg.type) {
    case 'publish':
      queue = queue.then(() => started).then(() => publish(msg))
      break
    case 'ping':
      started.then(() => send({ type: 'pong', id: msg.id, stats }))
      break
    default:
      fatal(`unknown message type ${JSON.stringify(msg.type)}`)
  }
})
lines.on('close', async () => {
  await queue.catch(() => {})
  await client?.destroy().catch(() => {})
  process.exit(0)
})
