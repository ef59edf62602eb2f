// JS client -> JS server through a network made only of C DHT nodes (issue 6, matrix case 4):
// five C nodes (one bootstrapper) on 127.0.0.1 store the server's self-announce and relay
// PEER_HANDSHAKE / PEER_HOLEPUNCH between the JS peers (hyperdht.md §3.2). Passes when the
// connection opens and 1 MiB is echoed intact in both directions.
// Usage: node dht_relay_live.js <dht_node_tool>
const HyperDHT = require('hyperdht')
const b4a = require('b4a')
const crypto = require('crypto')
const { startC } = require('./dht_util')

const tool = process.argv[2]
const HOST = '127.0.0.1'
let failures = 0
function check (cond, msg) {
  if (cond) console.log('ok   ' + msg)
  else { failures++; console.log('FAIL ' + msg) }
}

async function scenario (firewalled) {
  const tag = firewalled ? '[firewalled peers] ' : '[open peers] '
  const cs = []
  const boot = startC(tool, ['--bootstrapper', '--store'])
  cs.push(boot)
  const [, bport] = (await boot.wait(/^listening/)).split(' ').map(Number)
  await boot.wait(/^ready/)
  for (let i = 0; i < 4; i++) {
    const c = startC(tool, ['--persistent', '--not-firewalled', '--store', '--bootstrap', `${HOST}:${bport}`])
    await c.wait(/^ready 1/)
    cs.push(c)
  }
  const bootstrap = [`${HOST}:${bport}`]
  // JS peers on loopback get firewalled: false (docs/testing.md: their quick firewall check
  // loses a race on loopback, which makes JS-only connects flaky too).
  // Firewalled peers: ephemeral without the quick check, so both stay firewalled and must
  // holepunch (PEER_HOLEPUNCH through the C relays) when the LAN shortcut is off.
  const peerOpts = firewalled ? { ephemeral: true, quickFirewall: false } : { firewalled: false }
  const a = new HyperDHT({ bootstrap, host: HOST, ...peerOpts })
  const b = new HyperDHT({ bootstrap, host: HOST, ...peerOpts })
  await a.fullyBootstrapped()
  await b.fullyBootstrapped()
  check(a.table.size >= 4, tag + `JS server DHT knows ${a.table.size} nodes (all C)`)

  const server = a.createServer((conn) => {
    conn.on('data', (d) => conn.write(d))
    conn.on('end', () => conn.end())
    conn.on('error', () => {})
  })
  await server.listen(HyperDHT.keyPair(b4a.alloc(32, 0x21)))
  let forwards = 0
  for (const c of cs) forwards += Number((await c.ask('stored', /^stored/)).split(' ')[1])
  check(forwards >= 3, tag + `server self-announce stored by C nodes (${forwards} entries; JS announces to the best 3)`)

  // 1. Default connect (LAN shortcut after the relayed handshake), 2. localConnection: false,
  //    which makes the peers holepunch through PEER_HOLEPUNCH messages relayed by C nodes.
  let holepunches = 0
  for (const [name, opts] of [['connect', {}], ['connect with localConnection: false', { localConnection: false }]]) {
    const payload = crypto.randomBytes(1 << 20)
    const conn = b.connect(server.publicKey, opts)
    const received = []
    let total = 0
    const done = new Promise((resolve, reject) => {
      conn.on('data', (d) => { received.push(d); total += d.length; if (total >= payload.length) resolve() })
      conn.on('error', reject)
      setTimeout(() => reject(new Error('echo timed out')), 30000)
    })
    conn.on('open', () => conn.write(payload))
    let ok = false
    try { await done; ok = true } catch (err) { console.error(err.message) }
    check(ok && b4a.equals(b4a.concat(received).subarray(0, payload.length), payload), tag + `${name}: JS client connected, 1 MiB echoed intact`)
    conn.destroy()
    const stats = [0, 0]
    for (const c of cs) {
      const st = (await c.ask('stats', /^stats/)).split(' ').slice(1).map(Number)
      stats[0] += st[0]
      stats[1] += st[1]
    }
    console.log(`     C nodes so far saw ${stats[0]} PEER_HANDSHAKE and ${stats[1]} PEER_HOLEPUNCH requests`)
    check(stats[0] >= 2, tag + `${name}: the handshake went through C nodes`)
    holepunches = stats[1]
  }
  await server.close()
  await a.destroy()
  await b.destroy()
  for (const c of cs) c.stop()
  if (firewalled) check(holepunches > 0, tag + 'PEER_HOLEPUNCH rounds were relayed by C nodes')
}

async function main () {
  await scenario(false)
  await scenario(true)
  if (failures) { console.error(`${failures} checks failed`); process.exit(1) }
  console.log('dht_relay_live: all checks passed')
}

main().catch((err) => { console.error(err); process.exit(1) })
