#!/usr/bin/env node
// Livepeer contract stand-ins on a local Ethereum node (ganache), for tests,
// CI and demos. Compiles interop/contracts/LivepeerMock.sol with solc's JS
// API (evmVersion "shanghai": ganache 7 has no MCOPY) and drives it from the
// node's first unlocked account. Every command prints one JSON line on
// stdout; errors go to stderr with exit status 1.
//
//   node interop/chain.mjs deploy --rpc URL [--transcoders JSON] [--no-register]
//       -> {"controller":"0x..","bondingManager":"0x..","chainId":1337}
//       Deploys ControllerMock and BondingManagerMock, registers the latter
//       under keccak256("BondingManager") (unless --no-register), then adds
//       the transcoders. JSON (or @file): [{"address":"0x..","stake":"1000","active":true}, ...]
//       ("stake" is a decimal string or number, default "0"; "active" defaults to true).
//   node interop/chain.mjs add --rpc URL --bonding-manager ADDR --transcoders JSON
//   node interop/chain.mjs set-active --rpc URL --bonding-manager ADDR --address A --active true|false
//   node interop/chain.mjs remove --rpc URL --bonding-manager ADDR --address A
//   node interop/chain.mjs set-contract --rpc URL --controller ADDR --name NAME --address A
//   node interop/chain.mjs corrupt-next --rpc URL --bonding-manager ADDR --address A --next B
//
// Start a node with:
//   node interop/node_modules/ganache/dist/node/cli.js --server.host 127.0.0.1 \
//        --server.port PORT --wallet.deterministic --logging.quiet

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ethers } from 'ethers';
import solc from 'solc';

const here = dirname(fileURLToPath(import.meta.url));
const SOURCE = 'LivepeerMock.sol';

function fail(msg) {
  process.stderr.write(`chain.mjs: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const [command, ...rest] = argv;
  const opts = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (!a.startsWith('--')) fail(`unexpected argument ${JSON.stringify(a)}`);
    const key = a.slice(2);
    if (key === 'no-register') { opts[key] = true; continue; }
    if (i + 1 >= rest.length) fail(`${a} needs a value`);
    opts[key] = rest[++i];
  }
  return { command, opts };
}

function need(opts, key) {
  if (opts[key] === undefined) fail(`--${key} is required`);
  return opts[key];
}

function address(value, what) {
  if (!ethers.isAddress(value)) fail(`${what}: not an address: ${JSON.stringify(value)}`);
  return ethers.getAddress(value);
}

function parseTranscoders(text) {
  if (text === undefined) return [];
  const raw = text.startsWith('@') ? readFileSync(text.slice(1), 'utf8') : text;
  let list;
  try { list = JSON.parse(raw); } catch (e) { fail(`--transcoders is not JSON: ${e.message}`); }
  if (!Array.isArray(list)) fail('--transcoders must be a JSON array');
  return list.map((t, i) => ({
    address: address(t.address, `transcoders[${i}].address`),
    stake: BigInt(t.stake ?? 0),
    active: t.active ?? true,
  }));
}

function compile() {
  const input = {
    language: 'Solidity',
    sources: { [SOURCE]: { content: readFileSync(join(here, 'contracts', SOURCE), 'utf8') } },
    settings: {
      evmVersion: 'shanghai',
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length) fail(`solc: ${errors.map((e) => e.formattedMessage).join('\n')}`);
  return out.contracts[SOURCE];
}

// ABIs for commands that do not deploy (no compile needed).
const CONTROLLER_ABI = [
  'function setContractInfo(bytes32 id, address contractAddress, bytes20 gitCommitHash)',
  'function getContract(bytes32 id) view returns (address)',
];
const BONDING_MANAGER_ABI = [
  'function addTranscoder(address transcoder, uint256 stake, bool isActive)',
  'function removeTranscoder(address transcoder)',
  'function setActive(address transcoder, bool isActive)',
  'function corruptNext(address transcoder, address next)',
];

async function connect(rpc) {
  // One plain request first, so an unreachable node is a quick, clear error
  // (ethers would otherwise retry network detection forever).
  let chainId;
  try {
    const res = await fetch(rpc, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(10_000),
    });
    chainId = Number(BigInt((await res.json()).result));
  } catch (e) {
    fail(`cannot reach the JSON-RPC node at ${rpc}: ${e.cause?.message ?? e.message}`);
  }
  const provider = new ethers.JsonRpcProvider(rpc, ethers.Network.from(chainId), {
    staticNetwork: true,
    pollingInterval: 50,
  });
  const signer = await provider.getSigner(0);
  return { provider, signer, chainId };
}

async function send(txPromise) {
  const tx = await txPromise;
  const receipt = await tx.wait();
  if (receipt.status !== 1) fail(`transaction ${tx.hash} reverted`);
  return receipt;
}

async function addAll(bm, transcoders) {
  for (const t of transcoders) await send(bm.addTranscoder(t.address, t.stake, t.active));
}

function parseBool(value, what) {
  if (value === 'true') return true;
  if (value === 'false') return false;
  fail(`${what} must be true or false, got ${JSON.stringify(value)}`);
}

async function main() {
  const { command, opts } = parseArgs(process.argv.slice(2));
  const print = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
  switch (command) {
    case 'deploy': {
      const rpc = need(opts, 'rpc');
      const transcoders = parseTranscoders(opts.transcoders);
      const built = compile();
      const { signer, chainId } = await connect(rpc);
      const deploy = async (name) => {
        const c = built[name];
        const factory = new ethers.ContractFactory(c.abi, c.evm.bytecode.object, signer);
        const contract = await factory.deploy();
        await contract.waitForDeployment();
        return contract;
      };
      const controller = await deploy('ControllerMock');
      const bm = await deploy('BondingManagerMock');
      const bmAddress = await bm.getAddress();
      if (!opts['no-register']) {
        await send(controller.setContractInfo(ethers.id('BondingManager'), bmAddress, ethers.ZeroHash.slice(0, 42)));
      }
      await addAll(bm, transcoders);
      print({ controller: (await controller.getAddress()).toLowerCase(), bondingManager: bmAddress.toLowerCase(), chainId });
      break;
    }
    case 'add': {
      const { signer } = await connect(need(opts, 'rpc'));
      const bm = new ethers.Contract(address(need(opts, 'bonding-manager'), '--bonding-manager'), BONDING_MANAGER_ABI, signer);
      await addAll(bm, parseTranscoders(need(opts, 'transcoders')));
      print({ ok: true });
      break;
    }
    case 'set-active': {
      const { signer } = await connect(need(opts, 'rpc'));
      const bm = new ethers.Contract(address(need(opts, 'bonding-manager'), '--bonding-manager'), BONDING_MANAGER_ABI, signer);
      await send(bm.setActive(address(need(opts, 'address'), '--address'), parseBool(need(opts, 'active'), '--active')));
      print({ ok: true });
      break;
    }
    case 'remove': {
      const { signer } = await connect(need(opts, 'rpc'));
      const bm = new ethers.Contract(address(need(opts, 'bonding-manager'), '--bonding-manager'), BONDING_MANAGER_ABI, signer);
      await send(bm.removeTranscoder(address(need(opts, 'address'), '--address')));
      print({ ok: true });
      break;
    }
    case 'set-contract': {
      const { signer } = await connect(need(opts, 'rpc'));
      const controller = new ethers.Contract(address(need(opts, 'controller'), '--controller'), CONTROLLER_ABI, signer);
      await send(controller.setContractInfo(ethers.id(need(opts, 'name')), address(need(opts, 'address'), '--address'), ethers.ZeroHash.slice(0, 42)));
      print({ ok: true });
      break;
    }
    case 'corrupt-next': {
      const { signer } = await connect(need(opts, 'rpc'));
      const bm = new ethers.Contract(address(need(opts, 'bonding-manager'), '--bonding-manager'), BONDING_MANAGER_ABI, signer);
      await send(bm.corruptNext(address(need(opts, 'address'), '--address'), address(need(opts, 'next'), '--next')));
      print({ ok: true });
      break;
    }
    default:
      fail(`unknown command ${JSON.stringify(command)}; expected deploy, add, set-active, remove, set-contract or corrupt-next`);
  }
}

main().then(
  () => process.exit(0),
  (e) => fail(e.shortMessage ?? e.message ?? String(e)),
);
