// SPDX-License-Identifier: MIT OR Apache-2.0
//
// TEST STAND-IN, NOT LIVEPEER'S CODE. These two contracts expose only the
// view functions Vouch reads from Livepeer's protocol contracts
// (livepeer/protocol: Controller, BondingManagerTarget), with the real
// signatures and selectors, plus setters that tests use to shape the pool.
// Nothing here models bonding, rounds or rewards: "active" is a flag and
// "stake" is a number. Deploy with interop/chain.mjs.
//
// Compile with evmVersion "shanghai" (ganache 7 has no MCOPY).
pragma solidity ^0.8.20;

/// Livepeer's contract registry: getContract(keccak256("BondingManager")).
contract ControllerMock {
    mapping(bytes32 => address) private registry;

    /// Same name and arguments as Livepeer's Controller (owner check omitted).
    function setContractInfo(bytes32 id, address contractAddress, bytes20 /* gitCommitHash */) external {
        registry[id] = contractAddress;
    }

    /// Real signature: Controller.getContract(bytes32) view returns (address).
    function getContract(bytes32 id) external view returns (address) {
        return registry[id];
    }
}

/// The transcoder pool: a list sorted by stake, highest first, walked with
/// getFirstTranscoderInPool / getNextTranscoderInPool until address(0).
contract BondingManagerMock {
    uint256 public constant MAX_POOL_SIZE = 100;

    address private head;
    uint256 private size;
    mapping(address => address) private nextOf;
    mapping(address => bool) private inPool;
    mapping(address => uint256) private stakeOf;
    mapping(address => bool) private active;

    // ---- the real view functions Vouch reads ----

    function getFirstTranscoderInPool() external view returns (address) {
        return head;
    }

    function getNextTranscoderInPool(address transcoder) external view returns (address) {
        return nextOf[transcoder];
    }

    function getTranscoderPoolSize() external view returns (uint256) {
        return size;
    }

    function getTranscoderPoolMaxSize() external pure returns (uint256) {
        return MAX_POOL_SIZE;
    }

    function isActiveTranscoder(address transcoder) external view returns (bool) {
        return active[transcoder];
    }

    function isRegisteredTranscoder(address transcoder) external view returns (bool) {
        return inPool[transcoder];
    }

    function transcoderTotalStake(address transcoder) external view returns (uint256) {
        return stakeOf[transcoder];
    }

    // ---- test setters ----

    /// Inserts `transcoder` into the pool, keeping it sorted by stake
    /// (highest first; equal stakes keep insertion order).
    function addTranscoder(address transcoder, uint256 stake, bool isActive) external {
        require(transcoder != address(0), "zero address");
        require(!inPool[transcoder], "already in pool");
        require(size < MAX_POOL_SIZE, "pool full");
        inPool[transcoder] = true;
        stakeOf[transcoder] = stake;
        active[transcoder] = isActive;
        size += 1;
        if (head == address(0) || stakeOf[head] < stake) {
            nextOf[transcoder] = head;
            head = transcoder;
            return;
        }
        address cur = head;
        while (nextOf[cur] != address(0) && stakeOf[nextOf[cur]] >= stake) {
            cur = nextOf[cur];
        }
        nextOf[transcoder] = nextOf[cur];
        nextOf[cur] = transcoder;
    }

    /// Removes `transcoder` from the pool (it also stops being active).
    function removeTranscoder(address transcoder) external {
        require(inPool[transcoder], "not in pool");
        if (head == transcoder) {
            head = nextOf[transcoder];
        } else {
            address cur = head;
            while (nextOf[cur] != transcoder) {
                cur = nextOf[cur];
            }
            nextOf[cur] = nextOf[transcoder];
        }
        delete nextOf[transcoder];
        delete inPool[transcoder];
        delete stakeOf[transcoder];
        delete active[transcoder];
        size -= 1;
    }

    /// Sets the active flag (Livepeer: activationRound <= currentRound < deactivationRound).
    function setActive(address transcoder, bool isActive) external {
        active[transcoder] = isActive;
    }

    /// Breaks the list on purpose (e.g. a cycle) so tests can check that a
    /// reader's pool walk is bounded. Never part of Livepeer's ABI.
    function corruptNext(address transcoder, address next) external {
        nextOf[transcoder] = next;
    }
}
