// JS twin of tests/crypto/ss_peer.c (same options and output), built on the reference:
// @hyperswarm/secret-stream over a net.Socket; for --mode ik, hyperdht's NoiseWrap with its two
// messages uint24-framed over the socket, then NoiseSecretStream in handshake mode.
'use strict'
const net = require('net')
const crypto = require('crypto')
const NSS = require('@hyperswarm/secret-stream')
const NoiseWrap = require('hyperdht/lib/noise-wrap.js')
const c = require('compact-encoding')
const m = require('hyperdht/lib/messages.js')

const opts = { chunk: 65536, send: 0, expect: 0, tamper: 0, checksum: '1' }
const argv = process.argv.slice(2)
for (let i = 0; i + 1 < argv.length; i += 2) opts[argv[i].replace(/^--/, '')] = argv[i + 1]
const send = Number(opts.send); const expect = Number(opts.expect)
const chunk = Number(opts.chunk); const tamper = Number(opts.tamper)
// --checksum 0 (benchmark): one reused random buffer and no hashing
const checksum = opts.checksum !== '0'
const fixed = checksum ? null : crypto.randomBytes(chunk)
const initiator = opts.connect !== undefined
const keyPair = NSS.keyPair(opts.seed ? Buffer.from(opts.seed, 'hex') : undefined)
const remote = opts.remote ? Buffer.from(opts.remote, 'hex') : null
const hex = (b) => Buffer.from(b).toString('hex')

let sent = 0; let received = 0; let rxStart = 0n; let rxEnd = 0n
const txHash = crypto.createHash('blake2b512'); const rxHash = crypto.createHash('blake2b512')
let failed = false
let written = 0

function done (err) {
  if (failed) return
  if (err) { failed = true; console.log('error ' + (err.message || err)) }
  console.log('tx_bytes ' + sent)
  console.log('tx_hash ' + txHash.digest('hex'))
  console.log('rx_bytes ' + received)
  console.log('rx_hash ' + rxHash.digest('hex'))
  if (received && rxEnd > rxStart) console.log('rx_mbps ' + (received / 1e6 / (Number(rxEnd - rxStart) / 1e9)).toFixed(1))
  if (!err && received !== expect) { console.log(`error received ${received} bytes, expected ${expect}`); failed = true }
  process.exit(failed ? 1 : 0)
}

function tamperWrites (socket) {
  if (!tamper) return
  const write = socket.write.bind(socket)
  socket.write = (data, ...rest) => {
    if (written < tamper && written + data.length >= tamper) {
      data = Buffer.from(data)
      data[tamper - written - 1] ^= 0x10
    }
    written += data.length
    return write(data, ...rest)
  }
}

function runStream (socket, streamOpts) {
  const s = new NSS(initiator, socket, { keepAlive: 5000, ...streamOpts })
  let localDone = false; let remoteDone = false
  // Exit once the socket is closed, so nothing queued is lost.
  s.on('error', (err) => done(err))
  socket.on('close', () => done(localDone && remoteDone ? null : new Error('stream closed early')))
  s.on('connect', () => {
    console.log('remote ' + hex(s.remotePublicKey))
    console.log('stream_id ' + hex(NSS.id(s.handshakeHash, true)))
    if (remote && !s.remotePublicKey.equals(remote)) return done(new Error('unexpected remote key'))
    const pump = () => {
      while (sent < send) {
        const n = Math.min(chunk, send - sent)
        const buf = checksum ? crypto.randomBytes(n) : fixed.subarray(0, n)
        if (checksum) txHash.update(buf)
        sent += n
        if (!s.write(buf)) return s.once('drain', pump)
      }
      s.end()
      s.once('finish', () => { localDone = true })
    }
    pump()
  })
  s.on('data', (d) => {
    if (received === 0) rxStart = process.hrtime.bigint()
    if (checksum) rxHash.update(d)
    received += d.length
    if (received >= expect) rxEnd = process.hrtime.bigint()
  })
  s.on('end', () => { remoteDone = true })
  return s
}

function frame (buf) {
  return Buffer.concat([Buffer.from([buf.length & 255, (buf.length >> 8) & 255, buf.length >> 16]), buf])
}

let handshakeEnd = null

function runIK (socket) {
  const wrap = new NoiseWrap(keyPair, initiator ? remote : null)
  const payload = c.decode(m.noisePayload, Buffer.from(opts.payload || '', 'hex'))
  let buffered = Buffer.alloc(0)
  if (initiator) socket.write(frame(wrap.send(payload)))
  const ondata = (data) => {
    buffered = Buffer.concat([buffered, data])
    if (buffered.length < 3) return
    const len = buffered[0] | buffered[1] << 8 | buffered[2] << 16
    if (buffered.length < 3 + len) return
    socket.removeListener('data', ondata)
    handshakeEnd()
    socket.pause()
    let got
    try {
      got = wrap.recv(buffered.subarray(3, 3 + len))
      if (!initiator) socket.write(frame(wrap.send(payload)))
    } catch (err) { return done(err) }
    console.log('payload ' + hex(c.encode(m.noisePayload, got)))
    const rest = buffered.subarray(3 + len)
    const hs = wrap.final()
    runStream(socket, { handshake: hs, data: rest.length ? rest : undefined })
  }
  const onend = () => done(new Error('connection ended during the handshake'))
  socket.on('data', ondata)
  socket.on('end', onend)
  handshakeEnd = () => socket.removeListener('end', onend)
}

function start (socket) {
  socket.setNoDelay(true)
  tamperWrites(socket)
  socket.on('error', (err) => done(err))
  if (opts.mode === 'ik') runIK(socket)
  else runStream(socket, { keyPair, remotePublicKey: remote })
}

if (initiator) {
  const socket = net.connect({ port: Number(opts.connect), host: '127.0.0.1', allowHalfOpen: true })
  socket.on('connect', () => start(socket))
  socket.on('error', (err) => done(err))
} else {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => { server.close(); start(socket) })
  server.listen(Number(opts.listen), '127.0.0.1', () => console.log('port ' + server.address().port))
}
