#!/usr/bin/env node
// A real wallet library (ethers v6) signing and verifying Vouch EIP-712
// documents, for the cross-implementation tests in
// delegation/tests/wallet_interop.rs.
//
//   node wallet.mjs sign-delegation <0x-key> <json-message> [json-domain]
//   node wallet.mjs sign-revocation <0x-key> <json-message> [json-domain]
//       Prints the eth_signTypedData_v4 document plus "signature", signed with
//       Wallet.signTypedData. "principal" defaults to the key's address; the
//       domain defaults to Arbitrum One.
//   node wallet.mjs verify <wallet-json-file>
//       Prints {"ok": bool, "signer": "0x…"|null, "hash": "0x…"|null}: ok is
//       true when the recovered signer is message.principal.

import { readFileSync } from "node:fs";
import { TypedDataEncoder, Wallet, verifyTypedData } from "ethers";

const EIP712_DOMAIN = [
  { name: "name", type: "string" },
  { name: "version", type: "string" },
  { name: "chainId", type: "uint256" },
  { name: "verifyingContract", type: "address" },
];

const TYPES = {
  Delegation: [
    { name: "principal", type: "address" },
    { name: "delegate", type: "address" },
    { name: "role", type: "uint8" },
    { name: "region", type: "string" },
    { name: "notBefore", type: "uint64" },
    { name: "notAfter", type: "uint64" },
    { name: "nonce", type: "uint64" },
  ],
  Revocation: [
    { name: "principal", type: "address" },
    { name: "delegate", type: "address" },
    { name: "revokedAt", type: "uint64" },
  ],
};

const ARBITRUM_ONE = {
  name: "Vouch Telemetry",
  version: "1",
  chainId: 42161,
  verifyingContract: "0x35Bcf3c30594191d53231E4FF333E8A770453e40",
};

// ethers derives the domain type from the domain object itself and refuses
// an EIP712Domain entry among the struct types.
function structTypes(types) {
  const { EIP712Domain, ...rest } = types;
  return rest;
}

async function sign(primaryType, key, messageJson, domainJson) {
  const wallet = new Wallet(key);
  const message = { principal: wallet.address, ...JSON.parse(messageJson) };
  const domain = domainJson ? JSON.parse(domainJson) : ARBITRUM_ONE;
  const types = { [primaryType]: TYPES[primaryType] };
  const signature = await wallet.signTypedData(domain, types, message);
  return {
    domain,
    types: { EIP712Domain: EIP712_DOMAIN, ...types },
    primaryType,
    message,
    signature,
  };
}

function verify(file) {
  const doc = JSON.parse(readFileSync(file, "utf8"));
  const types = structTypes(doc.types);
  try {
    const hash = TypedDataEncoder.hash(doc.domain, types, doc.message);
    const signer = verifyTypedData(doc.domain, types, doc.message, doc.signature);
    const ok = signer.toLowerCase() === String(doc.message.principal).toLowerCase();
    return { ok, signer, hash };
  } catch (e) {
    return { ok: false, signer: null, hash: null, error: String(e.shortMessage ?? e.message) };
  }
}

async function main(argv) {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case "sign-delegation":
      return sign("Delegation", args[0], args[1], args[2]);
    case "sign-revocation":
      return sign("Revocation", args[0], args[1], args[2]);
    case "verify":
      return verify(args[0]);
    default:
      throw new Error(
        "usage: wallet.mjs sign-delegation|sign-revocation <key> <json-message> [json-domain] | verify <file>",
      );
  }
}

try {
  process.stdout.write(JSON.stringify(await main(process.argv.slice(2))) + "\n");
} catch (e) {
  process.stderr.write(`wallet.mjs: ${e.message}\n`);
  process.exit(2);
}
