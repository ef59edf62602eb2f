// Differential test of src/encoding against the JS compact-encoding: values encoded by JS
// must decode in C to the same value and re-encode to identical bytes, values encoded by C
// must decode in JS and re-encode identically, and inputs JS rejects C must reject too.
// usage: node encoding_differential.js <cenc_tool> [count]
'use strict'
const c = require('compact-encoding')
const { execFileSync } = require('child_process')
const crypto = require('crypto')

const tool = process.argv[2]
const COUNT = Number(process.argv[3] || 10000)
const seed = crypto.randomInt(1, 2 ** 47)
let rng = BigInt(seed)
function rnd () { // xorshift, seeded: a failure can be replayed from the printed seed
  rng ^= rng << 13n; rng &= (1n << 64n) - 1n
  rng ^= rng >> 7n
  rng ^= rng << 17n; rng &= (1n << 64n) - 1n
  return Number(rng % 9007199254740991n)
}
const pick = (n) => rnd() % n
function randomUint () {
  const limits = [0xfc, 0xffff, 0xffffffff, Number.MAX_SAFE_INTEGER]
  const lim = limits[pick(4)]
  return lim === Number.MAX_SAFE_INTEGER ? rnd() : pick(lim + 1)
}
const bytes = (n) => Buffer.from(Array.from({ length: n }, () => pick(256)))
function randomString () {
  let s = ''
  const n = pick(24)
  for (let i = 0; i < n; i++) {
    let cp
    do cp = pick(pick(2) ? 0x80 : 0x110000); while (cp >= 0xd800 && cp <= 0xdfff)
    s += String.fromCodePoint(cp)
  }
  return s
}
const ipv4 = () => [0, 0, 0, 0].map(() => pick(256)).join('.')
const ipv6 = () => Array.from({ length: 8 }, () => pick(65536).toString(16)).join(':')

const hex = (b) => 'x' + Buffer.from(b || []).toString('hex')
const types = {
  uint: [c.uint, randomUint, String],
  uint8: [c.uint8, () => pick(256), String],
  uint16: [c.uint16, () => pick(65536), String],
  uint24: [c.uint24, () => pick(1 << 24), String],
  uint32: [c.uint32, () => pick(2 ** 32), String],
  uint64: [c.uint64, randomUint, String],
  int: [c.int, () => { const m = Math.floor(randomUint() / 2); return pick(2) ? -m - 1 : m }, String],
  bool: [c.bool, () => pick(2) === 1, (b) => (b ? '1' : '0')],
  fixed32: [c.fixed32, () => bytes(32), hex],
  fixed64: [c.fixed64, () => bytes(64), hex],
  buffer: [c.buffer, () => bytes(1 + pick(300)), hex],
  raw: [c.raw, () => bytes(pick(300)), hex],
  string: [c.string, randomString, (s) => hex(Buffer.from(s))],
  ipv4: [c.ipv4, ipv4, String],
  ipv4Address: [c.ipv4Address, () => ({ host: ipv4(), port: pick(65536) }), (a) => `${a.host}:${a.port}`],
  ipv6Address: [c.ipv6Address, () => ({ host: ipv6(), port: pick(65536) }), (a) => `[${a.host}]:${a.port}`]
}
const arrayKinds = ['uint', 'uint16', 'uint32', 'int', 'bool', 'fixed32', 'buffer', 'string', 'ipv4Address', 'ipv6Address']
for (const k of arrayKinds) {
  const [enc, gen, repr] = types[k]
  types['array:' + k] = [c.array(enc), () => Array.from({ length: pick(8) }, gen), (a) => '[' + a.map(repr).join(',') + ']']
}

let failures = 0
let checked = 0
function fail (msg) { if (failures++ < 20) console.error('FAIL ' + msg) }

function runC (args, input) {
  return execFileSync(tool, args, { input, maxBuffer: 1 << 30 }).toString().split('\n')
}

// 1. JS encodes, C decodes and re-encodes.
const cases = []
for (const [name, [enc, gen, repr]] of Object.entries(types)) {
  for (let i = 0; i < COUNT; i++) {
    const v = gen()
    cases.push({ name, hex: c.encode(enc, v).toString('hex'), repr: repr(v) })
  }
}
let out = runC(['check'], cases.map((t) => `${t.name} ${t.hex}`).join('\n') + '\n')
cases.forEach((t, i) => {
  checked++
  const [repr, again, trailing] = out[i].split(' ')
  if (repr !== t.repr || again !== t.hex || trailing !== '0') fail(`JS->C ${t.name} ${t.hex}: C said ${out[i]}, want ${t.repr}`)
})

// 2. C encodes, JS decodes and re-encodes.
out = runC(['gen', String(COUNT), String(seed)]).filter(Boolean)
for (const line of out) {
  checked++
  const [name, repr, h] = line.split(' ')
  const [enc, , toRepr] = types[name]
  try {
    const v = c.decode(enc, Buffer.from(h, 'hex'))
    const again = c.encode(enc, v).toString('hex')
    if (toRepr(v) !== repr || again !== h) fail(`C->JS ${name} ${h}: JS read ${toRepr(v)} / ${again}, C meant ${repr}`)
  } catch (e) {
    fail(`C->JS ${name} ${h}: JS threw ${e.message}`)
  }
}

// 3. Malformed input: every truncation JS rejects, C must reject as well.
const bad = []
for (const t of cases.filter((_, i) => i % 7 === 0)) {
  if (t.name === 'raw') continue
  const b = Buffer.from(t.hex, 'hex')
  const cut = b.subarray(0, pick(b.length))
  let jsThrew = false
  try { c.decode(types[t.name][0], cut) } catch { jsThrew = true }
  if (jsThrew) bad.push(`${t.name} ${cut.toString('hex')}`)
}
bad.push('uint64 ffffffffffffffff', 'uint ff0000000000002000', 'array:uint fe01001000')
out = runC(['check'], bad.join('\n') + '\n')
bad.forEach((line, i) => {
  checked++
  if (!out[i].startsWith('ERR')) fail(`malformed ${line}: C accepted it as ${out[i]}`)
})

console.log(`encoding differential (seed ${seed}): ${checked - failures} passed, ${failures} failed`)
process.exit(failures ? 1 : 0)
