// Deterministic vectors: computes handshake messages, hashes, split keys, ids, frames and
// datagrams with the JS reference (hyperdht NoiseWrap, @hyperswarm/secret-stream,
// hypercore-crypto, sodium) at test time, runs the C helper (crypto_vec) on the same inputs
// and compares every value. Usage: node crypto_vectors.js <path to crypto_vec>
'use strict'
const { spawnSync } = require('child_process')
const crypto = require('crypto')
const sodium = require('sodium-universal')
const curve = require('noise-curve-ed')
const hcrypto = require('hypercore-crypto')
const NoiseWrap = require('hyperdht/lib/noise-wrap.js')
const { createKeyPair } = require('hyperdht/lib/crypto.js')
const NSS = require('@hyperswarm/secret-stream')
const c = require('compact-encoding')
const m = require('hyperdht/lib/messages.js')

// If a promise never settles, node would exit 0 with an empty event loop: fail instead.
process.exitCode = 1
process.on('beforeExit', () => { console.error('crypto_vectors: stalled'); process.exit(1) })
const helper = process.argv[2]
if (!helper) { console.error('usage: crypto_vectors.js <crypto_vec>'); process.exit(2) }

const hex = (b) => Buffer.from(b).toString('hex')
let passed = 0; let failed = 0

const os = require('os')
const fs = require('fs')
const path = require('path')
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hsp-crypto-vec-'))
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }))
let tmpCount = 0

function run (...args) {
  // Arguments over the kernel's per-argument limit travel as @file.
  args = args.map(String).map((a) => {
    if (a.length < 60000) return a
    const f = path.join(tmp, 'arg' + (tmpCount++))
    fs.writeFileSync(f, a)
    return '@' + f
  })
  const r = spawnSync(helper, args, { encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.status !== 0) { console.error('helper failed:', args[0], r.stdout, r.stderr); failed++; return {} }
  const out = {}
  for (const line of r.stdout.trim().split('\n')) {
    const i = line.indexOf(' ')
    out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

function eq (what, got, want) {
  if (got === want) { passed++; return }
  failed++
  const cut = (x) => String(x).length > 160 ? String(x).slice(0, 160) + '...' : String(x)
  console.error(`MISMATCH ${what}\n  C:  ${cut(got)}\n  JS: ${cut(want)}`)
}

// Makes noise-curve-ed hand out the given ephemerals, in order of use, then restores it.
function withEphemerals (seeds, fn) {
  const orig = curve.generateKeyPair
  const queue = seeds.slice()
  curve.generateKeyPair = function (priv) {
    if (priv || queue.length === 0) return orig(priv)
    return createKeyPair(queue.shift())
  }
  try { return fn() } finally { curve.generateKeyPair = orig }
}

// Seed sets: the fixed ones of the protocol notes and two drawn now.
const seedSets = [
  [1, 2, 3, 4].map((b) => Buffer.alloc(32, b)),
  Array.from({ length: 4 }, () => crypto.randomBytes(32)),
  Array.from({ length: 4 }, () => crypto.randomBytes(32))
]

// --- ids, namespaces, signatures
for (const [seed] of seedSets) {
  const kp = createKeyPair(seed)
  const msg = crypto.randomBytes(37)
  const o = run('ids', hex(seed), hex(msg))
  eq('pk', o.pk, hex(kp.publicKey))
  eq('sk', o.sk, hex(kp.secretKey))
  eq('discovery_key', o.discovery_key, hex(hcrypto.discoveryKey(kp.publicKey)))
  eq('hash_pk', o.hash_pk, hex(hcrypto.hash(kp.publicKey)))
  eq('sig', o.sig, hex(hcrypto.sign(msg, kp.secretKey)))
  eq('verify', o.verify, '1')
  eq('verify_tampered', o.verify_tampered, '0')
  const dhtIds = [0, 1, 4, 5, 6, 10]
  const dht = hcrypto.namespace('hyperswarm/dht', 11)
  const { NS } = require('hyperdht/lib/constants.js')
  for (const id of dhtIds) {
    eq('ns_dht_' + id, o['ns_dht_' + id], hex(dht[id]))
    eq('const_dht_' + id, o['const_dht_' + id], hex(dht[id]))
  }
  eq('NS.PEER_HANDSHAKE', o.const_dht_0, hex(NS.PEER_HANDSHAKE))
  eq('NS.PEER_HOLEPUNCH', o.const_dht_1, hex(NS.PEER_HOLEPUNCH))
  const ss = hcrypto.namespace('hyperswarm/secret-stream', 3)
  for (let i = 0; i < 3; i++) {
    eq('ns_ss_' + i, o['ns_ss_' + i], hex(ss[i]))
    eq('const_ss_' + i, o['const_ss_' + i], hex(ss[i]))
  }
}

// --- Noise IK exactly as hyperdht's NoiseWrap runs it
const payloads = [
  [{ error: 0, firewall: 1, holepunch: null, addresses4: [{ host: '10.0.0.1', port: 49737 }], addresses6: [], udx: { reusableSocket: false, id: 1, seq: 0 }, secretStream: {}, relayThrough: null, relayAddresses: null },
    { error: 0, firewall: 1, holepunch: null, addresses4: [{ host: '10.0.0.2', port: 49738 }], addresses6: [], udx: { reusableSocket: false, id: 2, seq: 0 }, secretStream: {}, relayThrough: null, relayAddresses: null }],
  [{ error: 0, firewall: 0, holepunch: null, addresses4: [], addresses6: [], udx: null, secretStream: null, relayThrough: null, relayAddresses: null },
    { error: 0, firewall: 2, holepunch: { id: 7, relays: [] }, addresses4: [{ host: '127.0.0.1', port: 1 }], addresses6: [], udx: { reusableSocket: true, id: 9, seq: 3 }, secretStream: {}, relayThrough: null, relayAddresses: null }]
]
const ikResults = []
seedSets.forEach((seeds, si) => {
  const [iSeed, rSeed, ieSeed, reSeed] = seeds
  const [pI, pR] = payloads[si % payloads.length]
  const iS = createKeyPair(iSeed); const rS = createKeyPair(rSeed)
  const js = withEphemerals([ieSeed, reSeed], () => {
    const I = new NoiseWrap(iS, rS.publicKey)
    const R = new NoiseWrap(rS, null)
    // Copies: noise-handshake wipes its ephemeral buffers, which the messages may share.
    const msg1 = Buffer.from(I.send(pI))
    R.recv(Buffer.from(msg1))
    const msg2 = Buffer.from(R.send(pR))
    I.recv(Buffer.from(msg2))
    return { msg1, msg2, fi: I.final(), fr: R.final() }
  })
  const o = run('ik', ...seeds.map(hex), hex(c.encode(m.noisePayload, pI)), hex(c.encode(m.noisePayload, pR)))
  const tag = `ik[${si}] `
  eq(tag + 'msg1', o.msg1, hex(js.msg1))
  eq(tag + 'msg2', o.msg2, hex(js.msg2))
  eq(tag + 'payload1', o.payload1, hex(c.encode(m.noisePayload, pI)))
  eq(tag + 'payload2', o.payload2, hex(c.encode(m.noisePayload, pR)))
  eq(tag + 'initiator tx', o.initiator_tx, hex(js.fi.tx))
  eq(tag + 'initiator rx', o.initiator_rx, hex(js.fi.rx))
  eq(tag + 'responder tx', o.responder_tx, hex(js.fr.tx))
  eq(tag + 'responder rx', o.responder_rx, hex(js.fr.rx))
  eq(tag + 'initiator hash', o.initiator_hash, hex(js.fi.hash))
  eq(tag + 'responder hash', o.responder_hash, hex(js.fr.hash))
  eq(tag + 'responder learned key', o.responder_remote, hex(js.fr.remotePublicKey))
  eq(tag + 'initiator remote key', o.initiator_remote, hex(js.fi.remotePublicKey))
  eq(tag + 'holepunch secret', o.holepunch_secret, hex(js.fi.holepunchSecret))
  eq(tag + 'stream id initiator', o.stream_id_initiator, hex(NSS.id(js.fi.hash, true)))
  eq(tag + 'stream id responder', o.stream_id_responder, hex(js.fi.remoteId))
  ikResults.push({ seeds, ...js })
})

// --- secret-stream's own XX handshake: capture the frames two real NoiseSecretStreams write
function captureXX (seeds) {
  const [iSeed, rSeed, ieSeed, reSeed] = seeds
  return new Promise((resolve) => {
    const orig = curve.generateKeyPair
    const queue = [ieSeed, reSeed]
    curve.generateKeyPair = (priv) => (priv || !queue.length) ? orig(priv) : createKeyPair(queue.shift())
    const a = new NSS(true, null, { keyPair: createKeyPair(iSeed) })
    const b = new NSS(false, null, { keyPair: createKeyPair(rSeed) })
    const rawA = []; const rawB = []
    a.rawStream.on('data', (d) => rawA.push(Buffer.from(d)))
    b.rawStream.on('data', (d) => rawB.push(Buffer.from(d)))
    a.rawStream.pipe(b.rawStream).pipe(a.rawStream)
    let opened = 0
    const done = () => {
      if (++opened < 2) return
      curve.generateKeyPair = orig
      setImmediate(() => {
        resolve({ rawA, rawB, hash: a.handshakeHash, aRemote: a.remotePublicKey, bRemote: b.remotePublicKey })
        a.destroy(); b.destroy()
      })
    }
    a.on('connect', done); b.on('connect', done)
  })
}

const frameBody = (f) => hex(f.subarray(3))

async function main () {
  for (let si = 0; si < seedSets.length; si++) {
    const seeds = seedSets[si]
    const js = await captureXX(seeds)
    const o = run('xx', ...seeds.map(hex))
    const tag = `xx[${si}] `
    eq(tag + 'frame count', `${js.rawA.length}/${js.rawB.length}`, '3/2')
    eq(tag + 'msg1', o.msg1, frameBody(js.rawA[0]))
    eq(tag + 'msg2', o.msg2, frameBody(js.rawB[0]))
    eq(tag + 'msg3', o.msg3, frameBody(js.rawA[1]))
    eq(tag + 'hash', o.initiator_hash, hex(js.hash))
    eq(tag + 'responder hash', o.responder_hash, hex(js.hash))
    eq(tag + 'initiator learned key', o.initiator_remote, hex(js.aRemote))
    eq(tag + 'responder learned key', o.responder_remote, hex(js.bRemote))
    eq(tag + 'initiator header id', frameBody(js.rawA[2]).slice(0, 64), hex(NSS.id(js.hash, true)))
  }

  // --- deterministic secret-stream frames (init_pull trick) for each IK result
  for (let si = 0; si < ikResults.length; si++) {
    const { fi } = ikResults[si]
    const H = si === 0 ? Buffer.from([...Array(24).keys()]) : crypto.randomBytes(24)
    const msgs = [Buffer.from('hello'), Buffer.alloc(0), Buffer.from('world!'), crypto.randomBytes(70000)]
    const st = Buffer.alloc(sodium.crypto_secretstream_xchacha20poly1305_STATEBYTES)
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(st, H, fi.tx)
    const parts = [Buffer.from([56, 0, 0]), NSS.id(fi.hash, true), H]
    for (const msg of msgs) {
      const ct = Buffer.alloc(msg.length + 17)
      sodium.crypto_secretstream_xchacha20poly1305_push(st, ct, msg, null, sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
      parts.push(Buffer.from([ct.length & 255, (ct.length >> 8) & 255, ct.length >> 16]), ct)
    }
    const o = run('ss', 1, hex(fi.tx), hex(fi.hash), hex(H), ...msgs.map(hex))
    eq(`ss[${si}] frames`, o.raw, hex(Buffer.concat(parts)))
  }

  // --- cross-decrypt: what real JS streams (handshake mode) write, C reads
  for (let si = 0; si < ikResults.length; si++) {
    const { fi, fr } = ikResults[si]
    const a = new NSS(true, null, { handshake: fi })
    const b = new NSS(false, null, { handshake: fr })
    const rawA = []; const rawB = []
    a.rawStream.on('data', (d) => rawA.push(Buffer.from(d)))
    b.rawStream.on('data', (d) => rawB.push(Buffer.from(d)))
    a.rawStream.pipe(b.rawStream).pipe(a.rawStream)
    const big = crypto.randomBytes(200000)
    // streamx emits no 'data' for an empty chunk: wait for the raw bytes instead.
    const wantA = 59 + (5 + 20) + (big.length + 20) + 20
    const wantB = 59 + (7 + 20)
    const delivered = new Promise((resolve) => {
      const sum = (l) => l.reduce((n, x) => n + x.length, 0)
      const check = () => { if (sum(rawA) === wantA && sum(rawB) === wantB) setImmediate(resolve) }
      a.rawStream.on('data', check)
      b.rawStream.on('data', check)
    })
    a.write(Buffer.from('hello')); a.sendKeepAlive(); a.write(big)
    b.write(Buffer.from('hi back'))
    await delivered
    a.destroy(); b.destroy()
    const oa = run('ssrecv', 0, hex(fr.rx), hex(fr.hash), hex(Buffer.concat(rawA)))
    eq(`ssrecv[${si}] a->b count`, oa.messages, '3')
    eq(`ssrecv[${si}] a->b 1`, oa.message1, hex(Buffer.from('hello')))
    eq(`ssrecv[${si}] a->b 2`, oa.message2, '')
    eq(`ssrecv[${si}] a->b 3`, oa.message3, hex(big))
    const ob = run('ssrecv', 1, hex(fi.rx), hex(fi.hash), hex(Buffer.concat(rawB)))
    eq(`ssrecv[${si}] b->a`, ob.message1, hex(Buffer.from('hi back')))

    // and the reverse: C writes (random header), a real JS stream reads
    const msgs = [Buffer.from('from C'), crypto.randomBytes(100000)]
    const oc = run('ss', 1, hex(fi.tx), hex(fi.hash), hex(crypto.randomBytes(24)), ...msgs.map(hex))
    const got = await new Promise((resolve, reject) => {
      const r = new NSS(false, null, { handshake: fr })
      const out = []
      r.on('data', (d) => { out.push(Buffer.from(d)); if (out.length === msgs.length) { resolve(out); r.destroy() } })
      r.on('error', reject)
      r.rawStream.on('data', () => {})
      r.rawStream.write(Buffer.from(oc.raw, 'hex'))
    })
    eq(`C->JS[${si}] 1`, hex(got[0]), hex(msgs[0]))
    eq(`C->JS[${si}] 2`, hex(got[1]), hex(msgs[1]))
  }

  // --- unordered datagrams: keys and a datagram with a fixed counter; C opens a JS one
  for (let si = 0; si < ikResults.length; si++) {
    const { fi } = ikResults[si]
    const [NS_I, NS_R, NS_SEND] = hcrypto.namespace('hyperswarm/secret-stream', 3)
    const sendKey = Buffer.alloc(32); const recvKey = Buffer.alloc(32)
    sodium.crypto_generichash_batch(sendKey, [NS_I, NS_SEND], fi.hash)
    sodium.crypto_generichash_batch(recvKey, [NS_R, NS_SEND], fi.hash)
    const initial = crypto.randomBytes(8)
    const counter = Buffer.from(initial); sodium.sodium_increment(counter)
    const nonce = Buffer.alloc(24); counter.copy(nonce)
    const msg = crypto.randomBytes(33)
    const ct = Buffer.alloc(msg.length + 16)
    sodium.crypto_secretbox_easy(ct, msg, nonce, sendKey)
    const o = run('dgram', 1, hex(fi.hash), hex(initial), hex(msg))
    eq(`dgram[${si}] send key`, o.send_key, hex(sendKey))
    eq(`dgram[${si}] recv key`, o.recv_key, hex(recvKey))
    eq(`dgram[${si}] datagram`, o.datagram, hex(Buffer.concat([counter, ct])))
    const op = run('dgramopen', 0, hex(fi.hash), hex(Buffer.concat([counter, ct])))
    eq(`dgram[${si}] open`, op.plain, hex(msg))
  }

  // --- key text forms (hypercore-id-encoding / z32), as HyperDHT.connect reads them
  const idenc = require('hypercore-id-encoding')
  const z32 = require('z32')
  const keys = [Buffer.alloc(32, 0), Buffer.alloc(32, 0xff), createKeyPair(Buffer.alloc(32, 1)).publicKey, ...Array.from({ length: 5 }, () => crypto.randomBytes(32))]
  for (const key of keys) {
    const enc = idenc.encode(key)
    const last = z32.ALPHABET.indexOf(enc[51])
    const texts = [
      enc, key.toString('hex'), key.toString('hex').toUpperCase(), 'pear://' + enc, 'pear://' + enc + '/some/path',
      'pear://' + key.toString('hex'), enc.toUpperCase(), enc.slice(0, 51), enc + 'y', key.toString('hex').slice(1),
      enc.slice(0, 51) + z32.ALPHABET[last ^ 1], enc.slice(0, 51) + z32.ALPHABET[last ^ 8], // padding bits only / a key bit
      enc.slice(0, 20) + '0' + enc.slice(21), enc.slice(0, 20) + 'l' + enc.slice(21), 'x'.repeat(64), ''
    ]
    const o = run('keyid', hex(key), ...texts)
    eq('z32 ' + hex(key), o.z32, enc)
    texts.forEach((t, i) => {
      let want
      try { want = hex(idenc.decode(t)) } catch { want = 'invalid' }
      eq(`decode ${JSON.stringify(t)}`, o['decode' + (i + 1)], want)
    })
  }

  console.log(`crypto_vectors: ${passed} passed, ${failed} failed`)
  process.exit(failed || passed === 0 ? 1 : 0)
}

main().catch((err) => { console.error(err); process.exit(1) })
