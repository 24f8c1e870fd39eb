// Independent check of Vouch envelopes with Streamr's own signer.
//
//   node interop/streamr.mjs verify HEX [PRIVATE_KEY]
//
// Decodes Streamr protobuf StreamMessage bytes (protobufjs, from the .proto
// in interop/proto), rebuilds the signature payload the way Streamr's SDK
// does (createSignaturePayload for a MESSAGE), and verifies the signature
// with @streamr/utils' EcdsaSecp256k1Evm. With PRIVATE_KEY it also re-signs
// the payload with Streamr's signer; RFC 6979 makes that deterministic, so
// the signature bytes must be identical. Prints one JSON line.
import { readFileSync } from 'node:fs'
import { EcdsaSecp256k1Evm, toUserId, toUserIdRaw, hexToBinary, binaryToHex } from '@streamr/utils'
import { StreamMessage, decodeStreamMessage, signaturePayload } from './streamr-message.mjs'



const [cmd, hex, privateKey] = process.argv.slice(2)
if (cmd !== 'verify' || !hex) {
  console.error('usage: node interop/streamr.mjs verify HEX [PRIVATE_KEY]')
  process.exit(2)
}
const bytes = hexToBinary(hex.trim())
const msg = decodeStreamMessage(bytes)
const signer = new EcdsaSecp256k1Evm()
const payload = signaturePayload(msg)
const ok = await signer.verifySignature(toUserIdRaw(toUserId(msg.messageId.publisherId)), payload, msg.signature)
const out = {
  ok,
  publisher: toUserId(msg.messageId.publisherId),
  streamId: msg.messageId.streamId,
  signatureType: msg.signatureType,
  contentType: msg.contentMessage?.contentType,
  reencodeIdentical: binaryToHex(StreamMessage.encode(StreamMessage.decode(bytes)).finish()) === binaryToHex(bytes),
}
if (privateKey) {
  const sig = await signer.createSignature(payload, hexToBinary(privateKey.replace(/^0x/, '')))
  out.resignedIdentical = binaryToHex(sig) === binaryToHex(msg.signature)
}
console.log(JSON.stringify(out))
