// C <-> JS differential test of the dht-rpc and hyperdht codecs.
// Usage: node dht_messages.js <dht_codec_tool>
// 1. Random dht-rpc requests/responses produced by dht-rpc's own encoders (lib/io.js Request).
// 2. Random hyperdht values produced by hyperdht/lib/messages.js.
// 3. Every datagram (and every hyperdht value inside) captured from a live JS testnet on
//    127.0.0.1 doing ping, findNode, tokens, announce, lookup, connect, mutable/immutable.
// The C tool must decode each one and re-encode it byte-identically; for dht-rpc it also
// prints the decoded fields, which must equal what JS encoded.
const { execFileSync } = require('child_process')
const b4a = require('b4a')
const crypto = require('crypto')
const IO = require('dht-rpc/lib/io')
const m = require('hyperdht/lib/messages')

const tool = process.argv[2]
if (!tool) { console.error('usage: dht_messages.js <dht_codec_tool>'); process.exit(2) }

let seed = 0x1234567
function rnd (n) { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return Math.floor((seed / 4294967296) * n) }
function bytes (n) { const b = b4a.alloc(n); for (let i = 0; i < n; i++) b[i] = rnd(256); return b }
function pick (a) { return a[rnd(a.length)] }
function addr () { return { host: `${rnd(256)}.${rnd(256)}.${rnd(256)}.${rnd(256)}`, port: pick([0, 1, 80, 30001, 49737, 65535, rnd(65536)]) } }
function addr6 () { const g = []; for (let i = 0; i < 8; i++) g.push(rnd(65536).toString(16)); return { host: g.join(':'), port: rnd(65536) } }
function num () { return pick([0, 1, 2, 252, 253, 254, 255, 0xffff, 0x10000, 0xffffffff, 0x100000000, 2 ** 53 - 1, rnd(1000)]) }
function len () { return pick([0, 1, 2, 31, 252, 253, 300, rnd(1200)]) }
const hex = (b) => b4a.toString(b, 'hex')
const fmtAddr = (a) => `${a.host}:${a.port}`

const cases = [] // { codec, hex, desc }
let failures = 0
function fail (msg) { failures++; if (failures < 30) console.error('FAIL ' + msg) }

// ---- 1. dht-rpc through the reference encoders --------------------------------------------
const sent = []
const sock = { trySend (buf) { sent.push(b4a.from(buf)) } }
const other = { trySend (buf) { sent.push(b4a.from(buf)) } }
const fakeUdx = { watchNetworkInterfaces () { return { on () {}, destroy () {} } } }
let closer = []
const table = { id: bytes(32), closest: () => closer }
const io = new IO(table, fakeUdx, { firewalled: false })
io.serverSocket = sock
io.clientSocket = other
io.firewalled = false

function valueDesc (v) { return v === null ? '-' : v.byteLength === 0 ? 'empty' : hex(v) }

for (let i = 0; i < 600; i++) {
  table.id = bytes(32)
  io.ephemeral = rnd(2) === 0
  const socket = rnd(3) === 0 ? other : sock
  const to = addr()
  const token = rnd(2) ? bytes(32) : null
  const internal = rnd(2) === 0
  const command = rnd(4) ? rnd(12) : num()
  const target = rnd(2) ? bytes(32) : null
  const value = rnd(3) ? bytes(len()) : null
  const req = io.createRequest(to, token, internal, command, target, value, null, 0)
  req.tid = rnd(65536)
  const buf = req._encodeRequest(token, value, to, socket)
  const id = !io.ephemeral && socket === sock ? table.id : null
  cases.push({
    codec: 'rpc',
    hex: hex(buf),
    desc: `req tid=${req.tid} to=${fmtAddr(to)} id=${id ? hex(id) : '-'} token=${token ? hex(token) : '-'} internal=${internal ? 1 : 0} cmd=${command} target=${target ? hex(target) : '-'} value=${valueDesc(value)}`
  })

  // and a response to it
  closer = []
  const nc = pick([0, 0, 1, 3, 20, rnd(40)])
  for (let j = 0; j < nc; j++) closer.push(addr())
  const from = addr()
  const error = pick([0, 0, 0, 1, 2, num()])
  const rvalue = rnd(2) ? bytes(len()) : null
  const withToken = rnd(2) === 0
  const withCloser = rnd(4) !== 0
  sent.length = 0
  req.from = from
  req._sendReply(error, rvalue, withToken, withCloser, from, socket)
  const rbuf = sent[0]
  const rtoken = withToken ? io.token(from, 1) : null
  const rcloser = target !== null && withCloser ? closer : []
  cases.push({
    codec: 'rpc',
    hex: hex(rbuf),
    desc: `res tid=${req.tid} to=${fmtAddr(from)} id=${id ? hex(id) : '-'} token=${rtoken ? hex(rtoken) : '-'} closer=${rcloser.length ? rcloser.map(fmtAddr).join(',') : '-'} error=${error} value=${rvalue && rvalue.byteLength === 0 ? 'empty' : rvalue ? hex(rvalue) : '-'}`
  })
}

// ---- 2. hyperdht values through messages.js ----------------------------------------------
function maybe (f) { return rnd(2) ? f() : null }
function arr (f, max = 4) { const a = []; const n = rnd(max + 1); for (let i = 0; i < n; i++) a.push(f()); return a }
function peerRec () { return { publicKey: bytes(32), relayAddresses: arr(addr, 3) } }
const gens = {
  handshake: () => ({ mode: rnd(5), noise: bytes(len()), peerAddress: maybe(addr), relayAddress: maybe(addr) }),
  holepunch: () => ({ mode: rnd(5), id: num(), payload: bytes(len()), peerAddress: maybe(addr) }),
  noisePayload: () => ({
    version: 1,
    error: rnd(4),
    firewall: rnd(4),
    holepunch: maybe(() => ({ id: num(), relays: arr(() => ({ relayAddress: addr(), peerAddress: addr() })) })),
    addresses4: arr(addr),
    addresses6: arr(addr6),
    udx: maybe(() => ({ reusableSocket: rnd(2) === 0, id: num(), seq: num() })),
    secretStream: maybe(() => ({})),
    relayThrough: maybe(() => ({ publicKey: bytes(32), token: bytes(32) })),
    relayAddresses: maybe(() => arr(addr, 3))
  }),
  holepunchPayload: () => ({
    error: rnd(4),
    firewall: rnd(4),
    round: rnd(253), // the JS preencode assumes a 1-byte round
    connected: rnd(2) === 0,
    punching: rnd(2) === 0,
    addresses: maybe(() => arr(addr)),
    remoteAddress: maybe(addr),
    token: maybe(() => bytes(32)),
    remoteToken: maybe(() => bytes(32))
  }),
  peer: peerRec,
  lookupRawReply: () => ({ peers: arr(() => c.encode(m.peer, peerRec()), 20), bump: pick([0, num()]) }),
  announce: () => ({ peer: maybe(peerRec), refresh: maybe(() => bytes(32)), signature: maybe(() => bytes(64)), bump: pick([0, 0, num()]) }),
  mutablePutRequest: () => ({ publicKey: bytes(32), seq: num(), value: bytes(len()), signature: bytes(64) }),
  mutableGetResponse: () => ({ seq: num(), value: bytes(len()), signature: bytes(64) }),
  pluginRequest: () => ({ plugin: pick(['', 'x', 'some-plugin', 'ü∂']), version: num(), command: num(), value: maybe(() => bytes(len())) })
}
const c = require('compact-encoding')
for (const [codec, gen] of Object.entries(gens)) {
  for (let i = 0; i < 150; i++) cases.push({ codec, hex: hex(c.encode(m[codec], gen())) })
}
// Signatures: C signs, the result must equal Persistent.signAnnounce/signUnannounce/signMutable.
const Persistent = require('hyperdht/lib/persistent')
const sodium = require('sodium-universal')
for (let i = 0; i < 60; i++) {
  const seed = bytes(32)
  const keyPair = { publicKey: b4a.alloc(32), secretKey: b4a.alloc(64) }
  sodium.crypto_sign_seed_keypair(keyPair.publicKey, keyPair.secretKey, seed)
  const target = bytes(32); const id = bytes(32); const token = bytes(32)
  const peer = { publicKey: keyPair.publicKey, relayAddresses: arr(addr, 3) }
  const unann = i % 3 === 0
  const sig = (unann ? Persistent.signUnannounce : Persistent.signAnnounce)(target, token, id, { peer }, keyPair)
  cases.push({ codec: unann ? 'unannsig' : 'annsig', hex: hex(b4a.concat([target, id, token, seed, c.encode(m.peer, peer)])), want: hex(sig) + ' 1' })
  const seq = num(); const value = bytes(len())
  cases.push({ codec: 'mutsig', hex: hex(b4a.concat([seed, c.encode(m.mutableSignable, { seq, value })])), want: hex(Persistent.signMutable(seq, value, keyPair)) + ' 1' })
}
// Holepunch payload encryption: JS seals -> C opens (plaintext re-encodes identically);
// C seals with a given nonce -> JS opens it (secure-payload.js) and re-encodes identically.
const HolepunchPayload = require('hyperdht/lib/secure-payload')
const sealedByC = []
for (let i = 0; i < 60; i++) {
  const secret = bytes(32)
  const payload = gens.holepunchPayload()
  const plain = c.encode(m.holepunchPayload, payload)
  const hp = new HolepunchPayload(secret)
  cases.push({ codec: 'hpopen', hex: hex(b4a.concat([secret, hp.encrypt(payload)])), want: hex(plain) })
  const nonce = bytes(24)
  sealedByC.push({ secret, plain, index: cases.length })
  cases.push({ codec: 'hpseal', hex: hex(b4a.concat([secret, nonce, plain])), check: 'sealed' })
}
for (let i = 0; i < 20; i++) {
  const hash = bytes(64)
  const local = bytes(32)
  const host = addr().host
  const { NS } = require('hyperdht/lib/constants')
  const secret = b4a.alloc(32)
  sodium.crypto_generichash(secret, NS.PEER_HOLEPUNCH, hash)
  const hp = new HolepunchPayload(secret)
  hp._localSecret = local
  const hostBytes = b4a.from(host.split('.').map(Number))
  cases.push({ codec: 'hpsecret', hex: hex(b4a.concat([hash, local, hostBytes])), want: hex(secret) + ' ' + hex(hp.token({ host })) })
}
{ // tampered ciphertext is refused
  const secret = bytes(32)
  const sealed = new HolepunchPayload(secret).encrypt(gens.holepunchPayload())
  sealed[sealed.length - 1] ^= 1
  cases.push({ codec: 'hpopen', hex: hex(b4a.concat([secret, sealed])), want: 'ERR -12', raw: true })
}
// Documented exceptions: a noise payload of another version is reported, not re-encoded.
const VERSION2 = '02'

// ---- 3. live capture --------------------------------------------------------------------
const valueCodec = {
  req: { 0: 'handshake', 1: 'holepunch', 4: 'announce', 5: 'announce', 6: 'mutablePutRequest', 10: 'pluginRequest' },
  res: { 0: 'handshake', 1: 'holepunch', 2: 'peer', 3: 'lookupRawReply', 7: 'mutableGetResponse' }
}

async function capture () {
  const UDX = require('udx-native')
  const HyperDHT = require('hyperdht')
  const createTestnet = require('hyperdht/testnet')
  const u = new UDX()
  const proto = Object.getPrototypeOf(u.createSocket())
  const log = []
  for (const name of ['send', 'trySend']) {
    const orig = proto[name]
    proto[name] = function (buf, ...rest) {
      if (buf.byteLength > 1) log.push(b4a.from(buf))
      return orig.call(this, buf, ...rest)
    }
  }
  const testnet = await createTestnet(5, { host: '127.0.0.1' })
  const a = testnet.createNode()
  const b = testnet.createNode()
  const server = a.createServer((conn) => { conn.on('data', (d) => conn.write(d)); conn.on('error', () => {}) })
  await server.listen()
  const conn = b.connect(server.publicKey)
  conn.on('error', () => {})
  conn.write(b4a.from('hello'))
  await new Promise((resolve) => conn.once('data', resolve))
  conn.destroy()
  const topic = b4a.alloc(32, 7)
  await a.announce(topic, a.defaultKeyPair).finished()
  for await (const _ of b.lookup(topic)) {} // eslint-disable-line no-unused-vars
  const kp = HyperDHT.keyPair(b4a.alloc(32, 0x11))
  await a.mutablePut(kp, b4a.from('hello'), { seq: 1 })
  await b.mutableGet(kp.publicKey)
  await a.immutablePut(b4a.from('immutable'))
  await b.ping({ host: '127.0.0.1', port: testnet.nodes[1].address().port })
  await server.close()
  await a.destroy(); await b.destroy(); await testnet.destroy()

  const tidCommand = new Map()
  let values = 0
  for (const buf of log) {
    if (buf[0] !== 0x03 && buf[0] !== 0x13) continue
    cases.push({ codec: 'rpc', hex: hex(buf), live: true })
    const state = { start: 1, end: buf.byteLength, buffer: buf }
    const flags = c.uint.decode(state); const tid = c.uint16.decode(state); state.start += 6
    if (buf[0] === 0x03) {
      if (flags & 1) state.start += 32
      if (flags & 2) state.start += 32
      const cmd = c.uint.decode(state)
      if (flags & 8) state.start += 32
      const internal = (flags & 4) !== 0
      if (!internal) tidCommand.set(tid, cmd)
      if (!internal && (flags & 16) && valueCodec.req[cmd]) {
        const v = c.buffer.decode(state)
        if (v.byteLength) { cases.push({ codec: valueCodec.req[cmd], hex: hex(v), live: true }); values++ }
      }
    } else {
      const cmd = tidCommand.get(tid)
      if (flags & 1) state.start += 32
      if (flags & 2) state.start += 32
      if (flags & 4) c.array(c.ipv4Address).decode(state)
      if (flags & 8) c.uint.decode(state)
      if ((flags & 16) && cmd !== undefined && valueCodec.res[cmd]) {
        const v = c.buffer.decode(state)
        if (v.byteLength) { cases.push({ codec: valueCodec.res[cmd], hex: hex(v), live: true }); values++ }
      }
    }
  }
  return { datagrams: log.length, values }
}

async function main () {
  const live = await capture()
  const input = cases.map((k) => `${k.codec} ${k.hex}\n`).join('') + `noisePayload ${VERSION2}\n`
  const out = execFileSync(tool, { input, maxBuffer: 1 << 28 }).toString().split('\n')
  const counts = {}
  for (let i = 0; i < cases.length; i++) {
    const k = cases[i]
    const line = out[i] || ''
    counts[k.codec] = (counts[k.codec] || 0) + 1
    if (k.raw) { if (line !== k.want) fail(`${k.codec} -> ${line}, want ${k.want}`); continue }
    if (k.check === 'sealed') {
      const s = sealedByC.find((x) => x.index === i)
      const opened = new HolepunchPayload(s.secret).decrypt(b4a.from(line.slice(3), 'hex'))
      if (!opened || hex(c.encode(m.holepunchPayload, opened)) !== hex(s.plain)) fail(`hpseal: JS cannot open the C payload (${line.slice(0, 60)})`)
      continue
    }
    if (!line.startsWith('OK ')) { fail(`${k.codec} ${k.hex.slice(0, 80)} -> ${line}`); continue }
    const rest = line.slice(3)
    const sp = rest.indexOf(' ')
    const re = sp === -1 ? rest : rest.slice(0, sp)
    if (k.want) { if (rest !== k.want) fail(`${k.codec} signature differs\n  js ${k.want}\n  c  ${rest}`); continue }
    if (re !== k.hex) fail(`${k.codec} re-encode differs\n  js ${k.hex}\n  c  ${re}`)
    if (k.desc && rest.slice(sp + 1) !== k.desc) fail(`${k.codec} fields differ\n  js ${k.desc}\n  c  ${rest.slice(sp + 1)}`)
  }
  if (out[cases.length] !== 'ERR -11') fail(`noisePayload version 2 -> ${out[cases.length]}`)
  console.log(`cases per codec: ${JSON.stringify(counts)}; live datagrams ${live.datagrams}, live values ${live.values}`)
  if (failures) { console.error(`${failures} failures`); process.exit(1) }
  console.log('dht_messages: all round-trips byte-identical')
}

main().catch((err) => { console.error(err); process.exit(1) })
