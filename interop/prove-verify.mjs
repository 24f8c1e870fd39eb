// An independent check of `vouch prove` output: recomputes the RFC 6962
// root from the envelope id and its audit path with Node's own SHA-256,
// holds it against the root and size the checkpoint's note signs, and
// checks the note's EIP-191 signature with ethers.
//
//   node interop/prove-verify.mjs PROOF.json
// Prints {"ok", "root", "signer", "minute"}; exits 1 when anything fails.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { verifyMessage } from 'ethers';

const proof = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const sha256 = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const leafHash = (leaf) => sha256(Buffer.from([0]), leaf);
const nodeHash = (l, r) => sha256(Buffer.from([1]), l, r);

// RFC 9162 §2.1.3.2: verify an inclusion proof.
function rootFromPath(leaf, index, size, path) {
  if (index >= size) return null;
  let fn = BigInt(index);
  let sn = BigInt(size - 1);
  let r = leafHash(leaf);
  for (const p of path) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

const leaf = Buffer.from(proof.envelope, 'hex');
const path = proof.path.map((h) => Buffer.from(h, 'hex'));
const root = rootFromPath(leaf, proof.leaf_index, proof.tree_size, path);

// The note: body lines, a blank line, then "— vouch <address> <base64 signature>".
const note = proof.checkpoint.note;
const [body, sigLine] = note.split('\n\u2014 ');
const bodyText = body.endsWith('\n') ? body : `${body}\n`;
const field = (name) => (bodyText.split('\n').find((l) => l.startsWith(`${name} `)) || '').slice(name.length + 1);
const signedRoot = Buffer.from(field('root'), 'base64');
const signedSize = Number(field('envelopes'));
let signer = null;
let claimed = null;
if (proof.checkpoint.signed && sigLine) {
  const [, address, sig] = sigLine.trim().split(' ');
  claimed = address.toLowerCase();
  signer = verifyMessage(bodyText, `0x${Buffer.from(sig, 'base64').toString('hex')}`).toLowerCase();
}
const ok =
  root !== null &&
  root.equals(signedRoot) &&
  root.toString('hex') === proof.root &&
  signedSize === proof.tree_size &&
  (!proof.checkpoint.signed || signer === claimed);
console.log(JSON.stringify({ ok, root: root && root.toString('hex'), signer, minute: Number(field('minute')) }));
process.exit(ok ? 0 : 1);
