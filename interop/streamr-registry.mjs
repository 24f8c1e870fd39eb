// Streamr's StreamRegistryV5 on a local Ethereum node, for tests: the
// contract exactly as @streamr/network-contracts@8.2.0 ships it (ABI and
// bytecode from its build artifact; 9.x ships ABIs only), deployed from the
// node's first unlocked account and initialized without an ENS cache or a
// trusted forwarder. Prints one JSON line.
//
//   node -r ./interop/loopback-only.cjs interop/streamr-registry.mjs deploy --rpc URL
//       -> {"streamRegistry":"0x..","chainId":31337}
//   node -r ./interop/loopback-only.cjs interop/streamr-registry.mjs abi
//       -> the contract's ABI (JSON), as the Rust side encodes it
import { createRequire } from 'node:module'
import { ethers } from 'ethers'

const require = createRequire(import.meta.url)
const artifact = require('@streamr/network-contracts/dist/artifacts/contracts/StreamRegistry/StreamRegistryV5.sol/StreamRegistryV5.json')

function fail(msg) {
  process.stderr.write(`streamr-registry.mjs: ${msg}\n`)
  process.exit(1)
}

const [command, ...rest] = process.argv.slice(2)
if (command === 'abi') {
  process.stdout.write(JSON.stringify(artifact.abi) + '\n')
  process.exit(0)
}
if (command !== 'deploy') fail('usage: streamr-registry.mjs deploy --rpc URL | abi')
const rpcAt = rest.indexOf('--rpc')
if (rpcAt < 0 || rest[rpcAt + 1] === undefined) fail('--rpc URL is required')

const provider = new ethers.JsonRpcProvider(rest[rpcAt + 1], undefined, { staticNetwork: true, polling: true, pollingInterval: 50 })
const deployer = await provider.getSigner(0)
const factory = new ethers.ContractFactory(artifact.abi, artifact.bytecode, deployer)
const registry = await factory.deploy()
await registry.waitForDeployment()
await (await registry.initialize(ethers.ZeroAddress, ethers.ZeroAddress)).wait()
const { chainId } = await provider.getNetwork()
process.stdout.write(JSON.stringify({ streamRegistry: (await registry.getAddress()).toLowerCase(), chainId: Number(chainId) }) + '\n')
provider.destroy()
