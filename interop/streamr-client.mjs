// Streamr's own SDK (@streamr/sdk) as an independent party on a test network:
// a subscriber that validates every message the way any Streamr user's client
// does (signature, on-chain PUBLISH permission, partition), and a publisher.
// One JSON object per line on stdout; Streamr's logs go to stderr.
//
//   node -r ./interop/loopback-only.cjs interop/streamr-client.mjs subscribe --config FILE --stream ID --partition P...
//       {"type":"ready"} once subscribed, then per message {"type":"message","stream","partition",
//       "publisherId","signature","signatureType","timestamp","sequenceNumber","msgChainId",
//       "contentType","content","received_ms"} (bytes as hex) or, for each message the SDK refused,
//       {"type":"error","code","message","publisherId"}; runs until stdin closes.
//   ... publish --config FILE --key HEX --stream ID --partition P --content HEX [--count N] [--gap-ms G]
//       publishes the content N times with the SDK (signed by KEY, content type BINARY),
//       G ms apart, once the stream part has a neighbor, then lingers --linger-ms (500) before
//       leaving; {"type":"published","sent_ms":[...]} or {"type":"error","code","message"}.
//   ... publish-raw --config FILE --stream ID --message HEX
//       injects a pre-signed StreamMessage (protobuf hex) unchanged: {"type":"published"}.
//
// FILE is a StreamrClient config (JSON). Times are wall-clock milliseconds
// with a fraction (performance.timeOrigin + performance.now()).
import { readFileSync } from 'node:fs'
import './streamr-logs.mjs' // first: Streamr's logs to stderr
import { StreamrClient, convertBytesToStreamMessage } from '@streamr/sdk'
import { withFixedPeer } from './streamr-sidecar/peer.mjs'

const [command, ...rest] = process.argv.slice(2)
const opts = { partition: [] }
for (let i = 0; i < rest.length; i += 2) {
  const key = rest[i].replace(/^--/, '')
  if (key === 'partition') opts.partition.push(Number(rest[i + 1]))
  else opts[key] = rest[i + 1]
}
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const now = () => performance.timeOrigin + performance.now()
const hex = (bytes) => Buffer.from(bytes).toString('hex')
// A fixed peer descriptor, so no node of a test network looks its region up.
const config = await withFixedPeer(JSON.parse(readFileSync(opts.config, 'utf8')))
if (opts.key !== undefined) config.auth = { privateKey: opts.key }
const client = new StreamrClient(config)

async function subscribe() {
  for (const partition of opts.partition) {
    const sub = await client.subscribe({ id: opts.stream, partition }, (content, m) => {
      out({
        type: 'message', stream: m.streamId, partition: m.streamPartition, publisherId: m.publisherId,
        signature: hex(m.signature), signatureType: m.signatureType, timestamp: m.timestamp,
        sequenceNumber: m.sequenceNumber, msgChainId: m.msgChainId,
        contentType: m.streamMessage.contentType, content: hex(content), received_ms: now(),
      })
    })
    sub.on('error', (err) => out({
      type: 'error', code: err.code ?? 'UNKNOWN', message: err.message,
      publisherId: err.streamMessage?.getPublisherId?.(),
    }))
  }
  out({ type: 'ready', node_id: await client.getNodeId() })
  await new Promise((resolve) => process.stdin.on('end', resolve).resume())
}

// Publishing is fire and forget: join the stream part with a neighbor to
// hand messages to first, and linger before leaving so they get out.
async function withNeighbor(streamPartId, send) {
  await client.getNode().join(streamPartId, { minCount: 1, timeout: 20000 })
  await send()
  await new Promise((resolve) => setTimeout(resolve, Number(opts['linger-ms'] ?? 500)))
}

async function publish() {
  const content = Buffer.from(opts.content, 'hex')
  const count = Number(opts.count ?? 1)
  const gap = Number(opts['gap-ms'] ?? 0)
  const sent_ms = []
  const partition = opts.partition[0] ?? 0
  try {
    await withNeighbor(`${opts.stream}#${partition}`, async () => {
      for (let i = 0; i < count; i++) {
        if (i > 0 && gap > 0) await new Promise((resolve) => setTimeout(resolve, gap))
        sent_ms.push(now())
        await client.publish({ id: opts.stream, partition }, content)
      }
    })
    out({ type: 'published', sent_ms })
  } catch (err) {
    out({ type: 'error', code: err.code ?? 'UNKNOWN', message: err.message })
  }
}

async function publishRaw() {
  const message = convertBytesToStreamMessage(Buffer.from(opts.message, 'hex'))
  const streamPartId = `${message.getStreamId()}#${message.getStreamPartition()}`
  await withNeighbor(streamPartId, () => client.publishRaw(message))
  out({ type: 'published' })
}

try {
  if (command === 'subscribe') await subscribe()
  else if (command === 'publish') await publish()
  else if (command === 'publish-raw') await publishRaw()
  else throw new Error('usage: streamr-client.mjs subscribe|publish|publish-raw --config FILE ...')
} finally {
  await client.destroy()
}
process.exit(0)
