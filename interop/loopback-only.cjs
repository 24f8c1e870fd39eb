'use strict'
// Loopback only, for every Node process Vouch's Streamr tests and sidecar
// start (`node -r ./loopback-only.cjs …`): listeners are bound to 127.0.0.1
// whatever host they ask for (@streamr/dht binds 0.0.0.0), and outgoing TCP
// or UDP to anything but a loopback address fails at once, so nothing can
// reach, or wait on, the internet (the SDK's CDN region lookup, GeoIP
// download and ICE servers included).
const net = require('node:net')
const dgram = require('node:dgram')
const dns = require('node:dns')

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.'])
function isLoopback(host) {
  if (host === undefined || host === null || host === '') return true // Node's default: localhost
  const h = String(host).replace(/^\[|\]$/g, '').toLowerCase()
  if (LOOPBACK_NAMES.has(h) || h === '::1' || h === '::ffff:127.0.0.1') return true
  return net.isIPv4(h) && h.startsWith('127.')
}
function refused(host) {
  const err = new Error(`loopback-only: connection to ${host} refused (tests stay on 127.0.0.1)`)
  err.code = 'ECONNREFUSED'
  return err
}

// Listeners: any TCP listen on a port gets host 127.0.0.1.
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  const [first] = args
  if (first !== null && typeof first === 'object' && !('_handle' in first) && !('fd' in first)) {
    if (first.path === undefined) args[0] = { ...first, host: '127.0.0.1' }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    if (typeof args[1] === 'string') args[1] = '127.0.0.1'
    else args.splice(1, 0, '127.0.0.1')
  }
  return listen.apply(this, args)
}

// Outgoing TCP (http, https, ws, fetch all end here).
const connect = net.Socket.prototype.connect
net.Socket.prototype.connect = function (...args) {
  const [first] = args
  let host
  if (Array.isArray(first)) host = first[0]?.host // internal normalized form
  else if (first !== null && typeof first === 'object') host = first.path === undefined ? first.host : undefined
  else if (typeof first === 'number' || /^\d+$/.test(String(first))) host = typeof args[1] === 'string' ? args[1] : undefined
  if (!isLoopback(host)) {
    process.nextTick(() => this.destroy(refused(host)))
    return this
  }
  return connect.apply(this, args)
}

// UDP: bound to loopback, never sent elsewhere.
const bind = dgram.Socket.prototype.bind
dgram.Socket.prototype.bind = function (...args) {
  if (args[0] !== null && typeof args[0] === 'object') args[0] = { ...args[0], address: '127.0.0.1' }
  else if (typeof args[1] === 'string') args[1] = '127.0.0.1'
  else args.splice(1, 0, '127.0.0.1')
  return bind.apply(this, args)
}
const send = dgram.Socket.prototype.send
dgram.Socket.prototype.send = function (...args) {
  const address = args.find((a, i) => i > 0 && typeof a === 'string')
  if (address !== undefined && !isLoopback(address)) throw refused(address)
  return send.apply(this, args)
}

// Name lookups: only loopback names resolve.
const lookup = dns.lookup
dns.lookup = function (hostname, ...rest) {
  const cb = rest[rest.length - 1]
  if (!isLoopback(hostname) && !net.isIP(hostname)) {
    const err = refused(hostname)
    err.code = 'ENOTFOUND'
    process.nextTick(() => cb(err))
    return {}
  }
  return lookup.call(this, hostname, ...rest)
}
const promisesLookup = dns.promises.lookup
dns.promises.lookup = async function (hostname, ...rest) {
  if (!isLoopback(hostname) && !net.isIP(hostname)) {
    const err = refused(hostname)
    err.code = 'ENOTFOUND'
    throw err
  }
  return promisesLookup.call(this, hostname, ...rest)
}
