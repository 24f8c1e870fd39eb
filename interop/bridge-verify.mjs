// Independent check of what the Streamr bridge carries, with Streamr's own signer.
//
//   node interop/bridge-verify.mjs payloads FILE   # one bridge JSON payload per line (as on MQTT)
//   node interop/bridge-verify.mjs frames FILE     # `vouch bridge streamr export` output
//
// payloads: each line is the JSON object the bridge publishes to a Streamr
// node's MQTT plugin; its `stream_message` (base64) is a Streamr protobuf
// StreamMessage signed by the original publisher. frames: Streamr's
// storage-resend framing, u32 big-endian length + StreamMessage protobuf.
// Every message is decoded with protobufjs (interop/proto), its signature
// payload rebuilt the way Streamr's SDK does (createSignaturePayload for a
// MESSAGE), and the signature verified with @streamr/utils'
// EcdsaSecp256k1Evm against the publisherId. Prints one JSON line:
// {total, verified, failed: [{index, reason}], publishers, streams}.
import { readFileSync } from 'node:fs'
import { EcdsaSecp256k1Evm, toUserId, toUserIdRaw } from '@streamr/utils'
import { decodeStreamMessage, signaturePayload } from './streamr-message.mjs'



function messagesFromPayloads(text) {
  return text.split('\n').filter((l) => l.trim() !== '').map((line) => {
    const p = JSON.parse(line)
    if (p.vouch_bridge !== 1) throw new Error(`unknown payload version ${p.vouch_bridge}`)
    return { bytes: Buffer.from(p.stream_message, 'base64'), streamId: p.stream_id, partition: p.partition }
  })
}

function messagesFromFrames(buf) {
  const out = []
  for (let at = 0; at < buf.length;) {
    if (at + 4 > buf.length) throw new Error(`torn length prefix at byte ${at}`)
    const len = buf.readUInt32BE(at)
    if (at + 4 + len > buf.length) throw new Error(`torn frame at byte ${at}`)
    out.push({ bytes: buf.subarray(at + 4, at + 4 + len) })
    at += 4 + len
  }
  return out
}

const [mode, file] = process.argv.slice(2)
if (!['payloads', 'frames'].includes(mode) || !file) {
  console.error('usage: node interop/bridge-verify.mjs payloads|frames FILE')
  process.exit(2)
}
const raw = readFileSync(file)
const messages = mode === 'payloads' ? messagesFromPayloads(raw.toString('utf8')) : messagesFromFrames(raw)
const signer = new EcdsaSecp256k1Evm()
const failed = []
const publishers = new Set()
const streams = new Set()
let verified = 0
for (const [index, m] of messages.entries()) {
  try {
    const msg = decodeStreamMessage(m.bytes)
    if (msg.signatureType !== 1) throw new Error(`signature type ${msg.signatureType}`)
    if (m.streamId !== undefined && m.streamId !== msg.messageId.streamId) throw new Error('stream_id differs from the StreamMessage')
    if (m.partition !== undefined && m.partition !== msg.messageId.streamPartition) throw new Error('partition differs from the StreamMessage')
    const publisher = toUserId(msg.messageId.publisherId)
    const ok = await signer.verifySignature(toUserIdRaw(publisher), signaturePayload(msg), msg.signature)
    if (!ok) throw new Error('signature does not verify')
    verified += 1
    publishers.add(publisher)
    streams.add(msg.messageId.streamId)
  } catch (e) {
    failed.push({ index, reason: String(e.message ?? e) })
  }
}
console.log(JSON.stringify({ total: messages.length, verified, failed, publishers: [...publishers], streams: [...streams] }))
