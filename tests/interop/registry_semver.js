// Differential test: satisfies / maxSatisfying / compare of our C semver against npm semver
// 7.7.3 on generated (version, range) pairs. argv[2] = the C helper (semver_helper.c).
'use strict'
const { spawnSync } = require('child_process')
const semver = require('semver')

const helper = process.argv[2]
if (!helper) { console.error('usage: registry_semver.js <helper>'); process.exit(2) }

// Deterministic PRNG so a failure is reproducible.
let seed = Number(process.env.SEED || 0x5eed)
function rnd () { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000 }
const pick = a => a[Math.floor(rnd() * a.length)]
const int = n => Math.floor(rnd() * n)

const num = () => pick(['0', '1', '1', '2', '2', '3', '10', String(int(12))])
const preId = () => pick(['alpha', 'beta', 'rc', '0', '1', '2', 'x', 'beta-2', '0a', '01'])
const pre = () => { const n = 1 + int(2); const a = []; for (let i = 0; i < n; i++) a.push(preId()); return a.join('.') }

function version () {
  let v = `${num()}.${num()}.${num()}`
  if (rnd() < 0.2) v += '-' + pre()
  if (rnd() < 0.08) v += '+' + pick(['build', 'b.1', '001'])
  if (rnd() < 0.05) v = pick(['v', '=', ' ', 'V']) + v
  if (rnd() < 0.02) v = pick(['1.2', '1', '', 'a.b.c', '1.2.3.4', '01.2.3', '1.2.3-', '1.2.3+'])
  return v
}

const xid = () => pick(['x', 'X', '*', num(), num(), num()])
function partial () {
  const r = rnd()
  let v
  if (r < 0.15) v = xid()
  else if (r < 0.35) v = `${num()}.${xid()}`
  else if (r < 0.6) v = `${num()}.${num()}.${xid()}`
  else v = `${num()}.${num()}.${num()}`
  if (rnd() < 0.2 && v.split('.').length === 3) v += '-' + pre()
  if (rnd() < 0.04) v += '+b1'
  if (rnd() < 0.06) v = pick(['v', '='])+ v
  return v
}
const sp = () => pick(['', '', '', ' '])
function comparator () {
  const r = rnd()
  if (r < 0.2) return '^' + sp() + partial()
  if (r < 0.35) return pick(['~', '~>']) + sp() + partial()
  if (r < 0.7) return pick(['<', '<=', '>', '>=', '=', '']) + sp() + partial()
  if (r < 0.75) return pick(['*', 'x', '', '>=*', '<*', '>*', '<=x'])
  return partial()
}
function set () {
  if (rnd() < 0.15) return `${partial()} - ${partial()}`
  const n = 1 + int(3); const a = []
  for (let i = 0; i < n; i++) a.push(comparator())
  return a.join(pick([' ', ' ', '  ', '\t']))
}
function range () {
  if (rnd() < 0.02) return pick(['', '||', 'garbage', '>=1.2.3 <', '1.2.3 - ', '^^1', '~1.2.3.4', '1.2.3 ||| 2', '>=1.0.0 || <0.0.0-0'])
  const n = rnd() < 0.75 ? 1 : 2 + int(2); const a = []
  for (let i = 0; i < n; i++) a.push(set())
  return (rnd() < 0.1 ? ' ' : '') + a.join(pick([' || ', '||', ' ||'])) + (rnd() < 0.1 ? ' ' : '')
}

// Fields travel tab-separated, so tabs inside them are escaped as \\t (and \\ as \\\\).
const esc = s => s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t')
const N = Number(process.env.N || 12000)
const cases = []
const lines = []
for (let i = 0; i < N; i++) {
  const v = version(); const r = range()
  cases.push({ kind: 'S', v, r, want: semver.satisfies(v, r) ? '1' : '0' })
  lines.push(`S\t${esc(v)}\t${esc(r)}`)
}
// Garbage ranges from the characters the grammar uses: parse/reject decisions must agree.
const alphabet = '0123456789.xX*^~<>= -|+v'
for (let i = 0; i < 6000; i++) {
  let r = ''
  for (let k = 1 + int(14); k > 0; k--) r += alphabet[int(alphabet.length)]
  const v = version()
  cases.push({ kind: 'S', v, r, want: semver.satisfies(v, r) ? '1' : '0' })
  lines.push(`S\t${esc(v)}\t${esc(r)}`)
}
for (let i = 0; i < 3000; i++) {
  const r = range(); const vs = []
  const n = 1 + int(12)
  for (let k = 0; k < n; k++) vs.push(version())
  const best = semver.maxSatisfying(vs, r)
  // maxSatisfying returns the element; report its first index
  cases.push({ kind: 'M', v: vs.join(','), r, want: String(best === null ? -1 : vs.indexOf(best)) })
  lines.push(`M\t${esc(r)}\t${vs.map(esc).join('\t')}`)
}
for (let i = 0; i < 3000; i++) {
  const a = version(); const b = version()
  let want
  try { want = String(semver.compare(a, b)) } catch { want = 'E' }
  cases.push({ kind: 'C', v: a, r: b, want })
  lines.push(`C\t${esc(a)}\t${esc(b)}`)
}

const res = spawnSync(helper, [], { input: lines.join('\n') + '\n', maxBuffer: 1 << 26 })
if (res.status !== 0) { console.error('helper failed', res.status, String(res.stderr)); process.exit(1) }
const got = String(res.stdout).split('\n')
let fail = 0; let sat = 0
for (let i = 0; i < cases.length; i++) {
  const c = cases[i]
  if (c.kind === 'S' && c.want === '1') sat++
  if (got[i] !== c.want) {
    if (fail < 30) console.error(`MISMATCH ${c.kind} version=${JSON.stringify(c.v)} range=${JSON.stringify(c.r)} js=${c.want} c=${got[i]}`)
    fail++
  }
}
console.log(`registry_semver: ${cases.length} cases (${N} generated + 6000 garbage satisfies, ${sat} true), ${fail} mismatches`)
process.exit(fail ? 1 : 0)
