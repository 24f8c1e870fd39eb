// Streamr's message format as our interop scripts read it: the protobuf
// StreamMessage type (decoded with protobufjs from interop/proto, Streamr's
// NetworkRpc.proto) and Streamr's signature payload for a MESSAGE.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { toUserId } from '@streamr/utils'

const protoPath = fileURLToPath(new URL('./proto/NetworkRpc.proto', import.meta.url))
const root = protobuf.parse(readFileSync(protoPath, 'utf8')).root

/** The protobufjs type of Streamr's StreamMessage. */
export const StreamMessage = root.lookupType('streamr.StreamMessage')

/** Decodes StreamMessage bytes into a plain object (bytes as Buffers, longs as strings). */
export function decodeStreamMessage(bytes) {
  return StreamMessage.toObject(StreamMessage.decode(bytes),
    { longs: String, bytes: Buffer, defaults: true, oneofs: true })
}

/**
 * Streamr's createSignaturePayload (packages/sdk/src/signature/createSignaturePayload.ts)
 * for a MESSAGE: the header fields as decimal text, then the content and any new group key.
 */
export function signaturePayload(m) {
  const id = m.messageId
  const header = `${id.streamId}${id.streamPartition}${id.timestamp}${id.sequenceNumber}` +
    `${toUserId(id.publisherId)}${id.messageChainId}` +
    (m.previousMessageRef ? `${m.previousMessageRef.timestamp}${m.previousMessageRef.sequenceNumber}` : '')
  const body = m.contentMessage
  return Buffer.concat([Buffer.from(header, 'utf8'), body.content,
    body.newGroupKey ? Buffer.from(body.newGroupKey.id, 'utf8') : Buffer.alloc(0),
    body.newGroupKey ? body.newGroupKey.data : Buffer.alloc(0)])
}
