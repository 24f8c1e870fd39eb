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
import { EcdsaSecp256k1Evm, toUserId, toUserIdRaw, hexToBinary, binaryToHex } from '@streamr/utils'
import { decodeStreamMessage, signaturePayload } from './streamr-message.mjs'



const [file, keyHex] = process.argv.slice(2)
if (!file || !keyHex) {
  console.error('usage: node interop/peer-bench.mjs MESSAGES_FILE PRIVATE_KEY_HEX')
  process.exit(2)
}
const messages = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim())
  .map((hex) => decodeStreamMessage(hexToBinary(hex.trim())))
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
