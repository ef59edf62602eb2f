// C <-> JS differential test of the NAT sampler: random sample sequences (few hosts and
// ports, so hits and evictions happen) through nat-sampler 1.0.1 and the C sampler; the
// verdict and hit count after every sample must agree.
// Usage: node dht_nat.js <dht_codec_tool>
const { execFileSync } = require('child_process')
const NatSampler = require('nat-sampler')

const tool = process.argv[2]
let seed = 99
function rnd (n) { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return Math.floor((seed / 4294967296) * n) }

const cases = []
for (let i = 0; i < 500; i++) {
  const hosts = ['1.2.3.4', '5.6.7.8', '9.9.9.9'].slice(0, 1 + rnd(3))
  const ports = [1000, 1001, 40000, 65535].slice(0, 1 + rnd(4))
  const len = 1 + rnd(60)
  const s = new NatSampler()
  const samples = []
  const want = []
  for (let j = 0; j < len; j++) {
    const host = hosts[rnd(hosts.length)]
    const port = rnd(4) ? ports[0] : ports[rnd(ports.length)]
    samples.push({ host, port })
    const hits = s.add(host, port)
    want.push(s.host === null ? `-/${hits}` : `${s.host}:${s.port}/${hits}`)
  }
  const hex = samples.map(({ host, port }) => {
    const b = Buffer.alloc(6)
    host.split('.').forEach((x, k) => { b[k] = Number(x) })
    b.writeUInt16LE(port, 4)
    return b.toString('hex')
  }).join('')
  cases.push({ hex, want: 'OK ' + want.join(' ') })
}
// Routing table: random ids (many sharing long prefixes with the table id, so rows fill up)
// added to kademlia-routing-table and to the C table; accept/reject and row sizes must agree.
const Table = require('kademlia-routing-table')
for (let i = 0; i < 100; i++) {
  const id = Buffer.alloc(32)
  for (let j = 0; j < 32; j++) id[j] = rnd(256)
  const t = new Table(id, { k: 20 })
  const ids = [id]
  let flags = ''
  const n = 1 + rnd(400)
  for (let j = 0; j < n; j++) {
    const x = Buffer.alloc(32)
    for (let b = 0; b < 32; b++) x[b] = rnd(256)
    const keep = rnd(6) // copy a prefix of the table id: rows 0..5 get crowded
    for (let b = 0; b < keep; b++) x[b] = id[b]
    if (rnd(50) === 0) id.copy(x) // own id
    const dup = j > 0 && rnd(20) === 0 ? ids[1 + rnd(ids.length - 1)] : x
    ids.push(dup)
    const known = t.get(dup) !== null
    const own = dup.equals(id)
    const ok = own ? false : t.add({ id: dup })
    flags += (ok && !own) || known ? '1' : '0'
  }
  let rows = ''
  for (let r = 0; r < t.rows.length; r++) if (t.rows[r] && t.rows[r].nodes.length) rows += ` ${r}:${t.rows[r].nodes.length}`
  cases.push({ codec: 'table', hex: Buffer.concat(ids).toString('hex'), want: `OK ${flags} ${t.size}${rows}` })
}
// hyperdht NAT classification (lib/nat.js): random (to, from) sample sequences.
const Nat = require('hyperdht/lib/nat')
let natClassCases = 0
for (let i = 0; i < 300; i++) {
  const firewalled = rnd(5) !== 0
  const nat = new Nat({ firewalled }, null, null)
  const hosts = ['1.2.3.4', '5.6.7.8', '9.9.9.9'].slice(0, 1 + rnd(3))
  const ports = [1000, 1001, 2000].slice(0, 1 + rnd(3))
  const bufs = [Buffer.from([firewalled ? 1 : 0])]
  const want = []
  const n = 1 + rnd(12)
  for (let j = 0; j < n; j++) {
    const to = { host: hosts[rnd(hosts.length)], port: rnd(3) ? ports[0] : ports[rnd(ports.length)] }
    const from = { host: '10.0.0.' + (1 + rnd(3)), port: 1 + rnd(6) }
    nat.add(to, from)
    for (const a of [to, from]) {
      const b = Buffer.alloc(6)
      a.host.split('.').forEach((x, k) => { b[k] = Number(x) })
      b.writeUInt16LE(a.port, 4)
      bufs.push(b)
    }
    want.push(`${nat.firewall}:` + (nat.addresses ? nat.addresses.map((x) => `${x.host}:${x.port}`).join(',') : '-'))
  }
  cases.push({ codec: 'natclass', hex: Buffer.concat(bufs).toString('hex'), want: 'OK ' + want.join(' ') })
  natClassCases++
}
const out = execFileSync(tool, { input: cases.map((c) => `${c.codec || 'nat'} ${c.hex}\n`).join('') }).toString().split('\n')
let failures = 0
cases.forEach((c, i) => {
  if (out[i] !== c.want) { failures++; if (failures < 5) console.error(`FAIL case ${i}\n  js ${c.want}\n  c  ${out[i]}`) }
})
if (failures) { console.error(`${failures} of ${cases.length} sequences differ`); process.exit(1) }
console.log(`dht_nat: ${cases.length - 100 - natClassCases} NAT sample sequences agree with nat-sampler, 100 tables with kademlia-routing-table, ${natClassCases} sequences with hyperdht nat.js`)
