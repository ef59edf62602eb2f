// The registry protocol from Node: messages built and parsed with compact-encoding,
// signatures and hash chain checked with sodium-native, against our C server
// (server_helper.c). Shows a JS peer can speak it, and exercises forged / replayed /
// misaddressed / malformed requests end to end. argv[2] = the helper.
'use strict'
const { spawnSync } = require('child_process')
const c = require('compact-encoding')
const sodium = require('sodium-native')

const helper = process.argv[2]
let failed = 0
function check (cond, what) { if (!cond) { failed++; console.error('FAIL', what) } }

function keypair (byte) {
  const pk = Buffer.alloc(32); const sk = Buffer.alloc(64)
  sodium.crypto_sign_seed_keypair(pk, sk, Buffer.alloc(32, byte))
  return { pk, sk }
}
const reg = keypair(7)
const a = keypair(8)
const b = keypair(9)
const evil = keypair(10)

// --- encoders (docs/protocol.md) ---
function enc (parts) { // parts: [[codec, value], ...]
  const st = { start: 0, end: 0, buffer: null }
  for (const [k, v] of parts) k.preencode(st, v)
  st.buffer = Buffer.alloc(st.end)
  for (const [k, v] of parts) k.encode(st, v)
  return st.buffer
}
function signed (id, type, body, signerSk, ts, registry = reg.pk) {
  const tail = [[c.fixed32, registry], [c.uint, ts]]
  const payload = Buffer.concat([Buffer.from('hsp-registry-req-v1'), enc([[c.uint8, type], ...body, ...tail])])
  const sig = Buffer.alloc(64)
  sodium.crypto_sign_detached(sig, payload, signerSk)
  return enc([[c.uint8, 1], [c.uint, id], [c.uint8, type], ...body, ...tail, [c.fixed64, sig]])
}
const register = (id, kp, name, version, ts, signerSk = kp.sk, registry) => signed(id, 1,
  [[c.fixed32, kp.pk], [c.string, name], [c.string, version], [c.string, '{"port":5984}'], [c.uint, 15000]],
  signerSk, ts, registry)
const deregister = (id, kp, signer, signerSk, ts) => signed(id, 3, [[c.fixed32, kp.pk], [c.fixed32, signer]], signerSk, ts)
const query = (id, name, range) => enc([[c.uint8, 1], [c.uint, id], [c.uint8, 4], [c.string, name], [c.string, range], [c.uint, 0]])
const watch = (id, seq) => enc([[c.uint8, 1], [c.uint, id], [c.uint8, 6], [c.uint, seq]])

// --- decoders ---
function decode (hex) {
  const st = { start: 0, end: hex.length / 2, buffer: Buffer.from(hex, 'hex') }
  const m = { version: c.uint8.decode(st), id: c.uint.decode(st), type: c.uint8.decode(st) }
  if (m.type === 64) { m.seq = c.uint.decode(st); m.expires = c.uint.decode(st) }
  if (m.type === 65) { m.code = c.int.decode(st); m.message = c.string.decode(st) }
  if (m.type === 66) {
    m.instances = []
    for (let n = c.uint.decode(st); n > 0; n--) {
      m.instances.push({ key: c.fixed32.decode(st), name: c.string.decode(st), version: c.string.decode(st), tags: c.string.decode(st), ttl: c.uint.decode(st), registered: c.uint.decode(st), renewed: c.uint.decode(st), expires: c.uint.decode(st), regSeq: c.uint.decode(st) })
    }
  }
  if (m.type === 67) {
    m.head = c.uint.decode(st); m.more = c.bool.decode(st); m.entries = []
    for (let n = c.uint.decode(st); n > 0; n--) m.entries.push({ body: c.buffer.decode(st), sig: c.fixed64.decode(st) })
  }
  if (st.start !== st.end) throw new Error('trailing bytes in ' + hex)
  return m
}

// --- run a scripted session through the helper ---
const T0 = 1700000000000
const script = []
const step = (conn, now, msg) => script.push(`${conn} ${now} ${typeof msg === 'string' ? msg : msg.toString('hex')}`)
step(2, T0, watch(100, 0)) // 0
step(1, T0, register(1, a, 'couchdb', '3.2.2', T0)) // 1
step(1, T0, register(2, a, 'couchdb', '3.2.2', T0)) // 2 replay
step(1, T0, register(3, b, 'couchdb', '3.3.0', T0, evil.sk)) // 3 forged
step(1, T0, register(4, b, 'couchdb', '3.3.0', T0, b.sk, evil.pk)) // 4 wrong registry
step(1, T0, register(5, b, 'couchdb', '3.3.0', T0 - 300000)) // 5 stale
step(1, T0, Buffer.from('01067fff', 'hex')) // 6 malformed
step(1, T0 + 1, register(7, b, 'couchdb', '3.3.0', T0 + 1)) // 7
step(1, T0 + 2, query(8, 'couchdb', '3.x')) // 8
step(1, T0 + 3, deregister(9, a, b.pk, b.sk, T0 + 3)) // 9 b removing a: denied
step(1, T0 + 4, deregister(10, a, reg.pk, reg.sk, T0 + 4)) // 10 owner
step(1, T0 + 5, query(11, 'couchdb', '*')) // 11
step(0, T0 + 20000, 'tick') // 12 b's lease lapses
step(1, T0 + 20001, query(12, 'couchdb', '*')) // 13

const res = spawnSync(helper, [Buffer.alloc(32, 7).toString('hex')], { input: script.join('\n') + '\n' })
if (res.status !== 0) { console.error('helper exited', res.status, String(res.stderr)); process.exit(1) }
const replies = []; let cur = []
for (const line of String(res.stdout).split('\n')) {
  if (line === '.') { replies.push(cur); cur = [] } else if (line) { const [conn, hex] = line.split(' '); cur.push({ conn: Number(conn), m: decode(hex) }) }
}
check(replies.length === script.length, 'one reply group per step')
const only = (i, conn = 1) => replies[i].filter(r => r.conn === conn).map(r => r.m)
const pushes = []
for (const g of replies) for (const r of g) if (r.conn === 2) pushes.push(r.m)

check(only(1)[0].type === 64 && only(1)[0].id === 1 && only(1)[0].seq === 1 && only(1)[0].expires === T0 + 15000, 'register OK')
check(only(2)[0].type === 65 && only(2)[0].code === -7, 'replay refused: ' + JSON.stringify(only(2)[0]))
check(only(3)[0].type === 65 && only(3)[0].code === -5, 'forged refused')
check(only(4)[0].type === 65 && only(4)[0].code === -9, 'wrong registry refused')
check(only(5)[0].type === 65 && only(5)[0].code === -7, 'stale refused')
check(only(6)[0].type === 65 && only(6)[0].code === -1 && only(6)[0].id === 6, 'malformed answered')
check(only(7)[0].type === 64 && only(7)[0].seq === 2, 'second register OK')
const q = only(8)[0]
check(q.type === 66 && q.instances.length === 2 && q.instances[0].version === '3.3.0' && q.instances[1].key.equals(a.pk), 'query order')
check(only(9)[0].code === -9, 'foreign deregister refused')
check(only(10)[0].type === 64 && only(10)[0].seq === 3, 'owner deregister OK')
check(only(11)[0].instances.length === 1, 'one left')
check(only(13)[0].instances.length === 0, 'expired')

// The watcher received every change; verify the chain and signatures as a replica would.
let prev = Buffer.alloc(32); let seq = 0; const types = []
for (const m of pushes) {
  check(m.type === 67 && m.id === 100, 'push is ENTRIES for the watch')
  for (const e of m.entries) {
    const h = Buffer.alloc(32)
    sodium.crypto_generichash(h, Buffer.concat([prev, e.body]))
    const ok = sodium.crypto_sign_verify_detached(e.sig, Buffer.concat([Buffer.from('hsp-registry-log-v1'), h]), reg.pk)
    check(ok, 'entry signature ' + (seq + 1))
    const st = { start: 0, end: e.body.length, buffer: e.body }
    check(c.uint8.decode(st) === 1, 'entry format')
    check(c.uint.decode(st) === ++seq, 'entry seq')
    types.push(c.uint8.decode(st))
    prev = h
  }
}
check(JSON.stringify(types) === JSON.stringify([1, 1, 3, 4]), 'entry types ' + JSON.stringify(types))
console.log(`registry_protocol: ${script.length} steps, ${seq} entries verified in JS, ${failed} failures`)
process.exit(failed ? 1 : 0)
