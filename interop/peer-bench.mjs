// Peer comparison: sign and verify the same Streamr messages with Streamr's
// own package (@streamr/utils, ECDSA_SECP256K1_EVM) that Vouch's Rust signs
// and verifies, for the benchmark report.
//
//   node interop/peer-bench.mjs MESSAGES_FILE PRIVATE_KEY_HEX
//
// MESSAGES_FILE holds one StreamMessage (protobuf, hex) per line, all
// signed by PRIVATE_KEY_HEX. Decoding is done up front and not timed; each
// timed step builds the signature payload (Streamr's createSignaturePayload)
// and signs it, or builds it and verifies the message's signature (recover
// and compare, as Streamr's SignatureValidator does). Every signature must
// come out identical to the file's (RFC 6979) and every verification true.
// Prints one JSON line.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { EcdsaSecp256k1Evm, toUserId, toUserIdRaw, hexToBinary, binaryToHex } from '@streamr/utils'

const protoPath = fileURLToPath(new URL('./proto/NetworkRpc.proto', import.meta.url))
const root = protobuf.parse(readFileSync(protoPath, 'utf8')).root
const StreamMessage = root.lookupType('streamr.StreamMessage')

// Streamr's createSignaturePayload for a MESSAGE (see interop/streamr.mjs).
function signaturePayload(m) {
  const id = m.messageId
  const header = `${id.streamId}${id.streamPartition}${id.timestamp}${id.sequenceNumber}` +
    `${toUserId(id.publisherId)}${id.messageChainId}` +
    (m.previousMessageRef ? `${m.previousMessageRef.timestamp}${m.previousMessageRef.sequenceNumber}` : '')
  const body = m.contentMessage
  return Buffer.concat([Buffer.from(header, 'utf8'), body.content,
    body.newGroupKey ? Buffer.from(body.newGroupKey.id, 'utf8') : Buffer.alloc(0),
    body.newGroupKey ? body.newGroupKey.data : Buffer.alloc(0)])
}

const [file, keyHex] = process.argv.slice(2)
if (!file || !keyHex) {
  console.error('usage: node interop/peer-bench.mjs MESSAGES_FILE PRIVATE_KEY_HEX')
  process.exit(2)
}
const messages = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((hex) =>
  StreamMessage.toObject(StreamMessage.decode(hexToBinary(hex.trim())),
    { longs: String, bytes: Buffer, defaults: true, oneofs: true }))
const key = hexToBinary(keyHex.replace(/^0x/, ''))
const signer = new EcdsaSecp256k1Evm()

let t = process.hrtime.bigint()
const signatures = []
for (const m of messages) {
  signatures.push(await signer.createSignature(signaturePayload(m), key))
}
const signNs = Number(process.hrtime.bigint() - t)

t = process.hrtime.bigint()
let verified = 0
for (const m of messages) {
  const publisher = toUserIdRaw(toUserId(m.messageId.publisherId))
  if (await signer.verifySignature(publisher, signaturePayload(m), m.signature)) verified++
}
const verifyNs = Number(process.hrtime.bigint() - t)

const identical = messages.filter((m, i) => binaryToHex(m.signature) === binaryToHex(signatures[i])).length
console.log(JSON.stringify({
  messages: messages.length,
  sign_per_sec: messages.length / (signNs / 1e9),
  verify_per_sec: messages.length / (verifyNs / 1e9),
  verified,
  identical_signatures: identical,
  node: process.version,
}))
