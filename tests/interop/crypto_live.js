// Live interop over TCP on 127.0.0.1 between the C secret-stream (tests/crypto/ss_peer.c) and
// the JS reference (crypto_peer.js: @hyperswarm/secret-stream, hyperdht NoiseWrap):
//  - hyperdht IK handshake, C initiator <-> JS responder and the reverse, then secret-stream in
//    handshake mode on the same socket, data both ways at once, BLAKE2b-512 checksums;
//  - standalone secret-stream (its own XX handshake) in both roles, same data checks;
//  - failures: wrong remote key (IK and XX), a flipped bit in a handshake message and in a data
//    frame, each direction: the receiving side must fail closed with an error.
// Usage: node crypto_live.js <ss_peer> [MiB per direction, default 100]
'use strict'
const { spawn } = require('child_process')
const path = require('path')
const crypto = require('crypto')
const NSS = require('@hyperswarm/secret-stream')
const c = require('compact-encoding')
const m = require('hyperdht/lib/messages.js')

const cPeer = process.argv[2]
const MiB = Number(process.argv[3] || 100)
const BIG = MiB * 1024 * 1024
const jsPeer = path.join(__dirname, 'crypto_peer.js')
process.exitCode = 1
process.on('beforeExit', () => { console.error('crypto_live: stalled'); process.exit(1) })

let passed = 0; let failed = 0
function check (what, ok, detail) {
  if (ok) { passed++; return }
  failed++
  console.error('FAIL ' + what + (detail ? ': ' + detail : ''))
}

function spawnPeer (kind, args, isServer) {
  const cmd = kind === 'c' ? cPeer : process.execPath
  const full = kind === 'c' ? args : [jsPeer, ...args]
  const child = spawn(cmd, full, { stdio: ['ignore', 'pipe', 'pipe'] })
  const res = { kind, out: '', err: '', lines: {}, code: null }
  child.stdout.on('data', (d) => { res.out += d })
  child.stderr.on('data', (d) => { res.err += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), 150000)
  res.exited = new Promise((resolve) => child.on('close', (code, signal) => {
    clearTimeout(timer)
    res.code = code === null ? signal : code
    for (const line of res.out.split('\n')) {
      const i = line.indexOf(' ')
      if (i > 0 && !(line.slice(0, i) in res.lines)) res.lines[line.slice(0, i)] = line.slice(i + 1)
    }
    resolve(res)
  }))
  if (isServer) res.port = new Promise((resolve, reject) => {
    child.stdout.on('data', () => { const mm = res.out.match(/^port (\d+)$/m); if (mm) resolve(Number(mm[1])) })
    child.on('close', () => reject(new Error(kind + ' server exited before listening: ' + res.out + res.err)))
  })
  return res
}

async function runPair (serverKind, clientKind, serverArgs, clientArgs) {
  const server = spawnPeer(serverKind, ['--listen', '0', ...serverArgs], true)
  const port = await server.port
  const client = spawnPeer(clientKind, ['--connect', String(port), ...clientArgs])
  return [await server.exited, await client.exited]
}

const seedHex = () => crypto.randomBytes(32).toString('hex')
const pkOf = (seed) => NSS.keyPair(Buffer.from(seed, 'hex')).publicKey.toString('hex')
const payload = (i) => c.encode(m.noisePayload, {
  error: 0, firewall: 1, holepunch: null, addresses4: [{ host: '127.0.0.1', port: 40000 + i }], addresses6: [],
  udx: { reusableSocket: false, id: i, seq: 0 }, secretStream: {}, relayThrough: null, relayAddresses: null
}).toString('hex')

async function goodCase (mode, serverKind, clientKind, size) {
  const tag = `${mode} ${clientKind}-initiator->${serverKind}-responder`
  const sSeed = seedHex(); const cSeed = seedHex()
  const sArgs = ['--mode', mode, '--seed', sSeed, '--send', String(size), '--expect', String(size + 12345)]
  const cArgs = ['--mode', mode, '--seed', cSeed, '--send', String(size + 12345), '--expect', String(size)]
  if (mode === 'ik') {
    sArgs.push('--payload', payload(2))
    cArgs.push('--payload', payload(1), '--remote', pkOf(sSeed))
  } else {
    cArgs.push('--remote', pkOf(sSeed)) // the initiator insists on the responder's key
  }
  const t0 = Date.now()
  const [s, cl] = await runPair(serverKind, clientKind, sArgs, cArgs)
  const secs = (Date.now() - t0) / 1000
  const ok = s.code === 0 && cl.code === 0
  check(tag + ' both exit 0', ok, `server ${s.code} ${s.out.slice(-300)} ${s.err.slice(-300)} | client ${cl.code} ${cl.out.slice(-300)} ${cl.err.slice(-300)}`)
  check(tag + ' client sees server key', cl.lines.remote === pkOf(sSeed))
  check(tag + ' server sees client key', s.lines.remote === pkOf(cSeed))
  check(tag + ' same handshake (stream id)', s.lines.stream_id && s.lines.stream_id === cl.lines.stream_id)
  if (mode === 'ik') {
    check(tag + ' server got client payload', s.lines.payload === payload(1), s.lines.payload)
    check(tag + ' client got server payload', cl.lines.payload === payload(2), cl.lines.payload)
  }
  check(tag + ' client->server bytes', s.lines.rx_bytes === String(size + 12345) && cl.lines.tx_bytes === String(size + 12345))
  check(tag + ' client->server checksum', s.lines.rx_hash && s.lines.rx_hash === cl.lines.tx_hash)
  check(tag + ' server->client bytes', cl.lines.rx_bytes === String(size) && s.lines.tx_bytes === String(size))
  check(tag + ' server->client checksum', cl.lines.rx_hash && cl.lines.rx_hash === s.lines.tx_hash)
  console.log(`${tag}: ${(size / 1048576).toFixed(0)} MiB each way in ${secs.toFixed(1)} s (server rx ${s.lines.rx_mbps} MB/s, client rx ${cl.lines.rx_mbps} MB/s)`)
}

// A case that must fail: `victim` must exit non-zero with an "error" line and must not have
// received the whole payload.
async function badCase (tag, mode, serverKind, clientKind, { sArgs = [], cArgs = [], victim, errorLike }) {
  const sSeed = seedHex(); const cSeed = seedHex()
  const size = 4 * 1024 * 1024
  const base = (seed, pay) => ['--mode', mode, '--seed', seed, '--send', String(size), '--expect', String(size), ...(mode === 'ik' ? ['--payload', pay] : [])]
  const s2 = [...base(sSeed, payload(2)), ...sArgs]
  const c2 = [...base(cSeed, payload(1)), ...(mode === 'ik' && !cArgs.includes('--remote') ? ['--remote', pkOf(sSeed)] : []), ...cArgs]
  const [s, cl] = await runPair(serverKind, clientKind, s2, c2)
  const v = victim === 'server' ? s : cl
  check(tag + ' victim fails', v.code !== 0, `exit ${v.code} ${v.out.slice(-300)}`)
  check(tag + ' victim reports an error', /^error /m.test(v.out), v.out.slice(-300))
  if (errorLike) check(tag + ' error is ' + errorLike, errorLike.test(v.lines.error || ''), v.lines.error)
  check(tag + ' victim did not get the data', v.lines.rx_bytes !== String(size), v.lines.rx_bytes)
  // Neither side may believe the transfer succeeded.
  check(tag + ' no side completes', s.code !== 0 || cl.code !== 0)
  console.log(`${tag}: ${victim} (${v.kind}) failed with "${v.lines.error}"`)
}

async function main () {
  // happy paths, both roles, both handshakes
  await goodCase('ik', 'js', 'c', BIG)
  await goodCase('ik', 'c', 'js', BIG)
  await goodCase('xx', 'js', 'c', BIG)
  await goodCase('xx', 'c', 'js', BIG)
  await goodCase('ik', 'c', 'c', 8 << 20)
  await goodCase('xx', 'c', 'c', 8 << 20)

  const other = pkOf(seedHex())
  // IK initiator dials the wrong key: the responder cannot decrypt message 1
  await badCase('ik wrong key, C dials JS', 'ik', 'js', 'c', { cArgs: ['--remote', other], victim: 'server' })
  await badCase('ik wrong key, JS dials C', 'ik', 'c', 'js', { cArgs: ['--remote', other], victim: 'server', errorLike: /Noise handshake failed/ })
  // XX: a responder that insists on another initiator key
  await badCase('xx unexpected key, C rejects JS', 'xx', 'c', 'js', { sArgs: ['--remote', other], victim: 'server', errorLike: /not the expected one/ })
  await badCase('xx unexpected key, JS rejects C', 'xx', 'js', 'c', { sArgs: ['--remote', other], victim: 'server' })
  // flipped bit in a handshake message (IK msg1 byte 50; XX msg2 byte 60 from the responder)
  await badCase('ik tampered msg1 from C', 'ik', 'js', 'c', { cArgs: ['--tamper', '50'], victim: 'server' })
  await badCase('ik tampered msg1 from JS', 'ik', 'c', 'js', { cArgs: ['--tamper', '50'], victim: 'server', errorLike: /Noise handshake failed/ })
  await badCase('xx tampered msg2 from C', 'xx', 'c', 'js', { sArgs: ['--tamper', '60'], victim: 'client' })
  await badCase('xx tampered msg2 from JS', 'xx', 'js', 'c', { sArgs: ['--tamper', '60'], victim: 'client', errorLike: /Noise handshake failed/ })
  // flipped bit in a data frame (well past the handshake and header)
  await badCase('ik tampered data from C', 'ik', 'js', 'c', { cArgs: ['--tamper', '300000'], victim: 'server' })
  await badCase('ik tampered data from JS', 'ik', 'c', 'js', { cArgs: ['--tamper', '300000'], victim: 'server', errorLike: /failed to authenticate/ })
  await badCase('xx tampered data from C', 'xx', 'c', 'js', { sArgs: ['--tamper', '300000'], victim: 'client' })
  await badCase('xx tampered data from JS', 'xx', 'js', 'c', { sArgs: ['--tamper', '300000'], victim: 'client', errorLike: /failed to authenticate/ })
  // flipped bit in the secret-stream header frame (XX initiator: msg1 35 + msg3 67 bytes, then the header)
  await badCase('xx tampered header from JS', 'xx', 'c', 'js', { cArgs: ['--tamper', '120'], victim: 'server', errorLike: /header/ })

  console.log(`crypto_live: ${passed} passed, ${failed} failed`)
  process.exit(failed ? 1 : 0)
}

main().catch((err) => { console.error(err); process.exit(1) })
