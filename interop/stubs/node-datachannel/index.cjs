'use strict'
// @streamr/dht calls initLogger() when it loads and constructs a
// PeerConnection only for a WebRTC connection, which a network of
// WebSocket-server nodes never opens; should one be attempted, it fails
// loudly instead of silently.
function initLogger() {}
class PeerConnection {
  constructor() {
    throw new Error('WebRTC is not available (node-datachannel stand-in): every node must run a WebSocket server')
  }
}
module.exports = { initLogger, PeerConnection }
