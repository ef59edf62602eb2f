// Data plane smoke test: three services and a proxy on a loopback DHT; the proxy learns the
// instances as a registry watch would tell it, and forwards connections over warm sessions.
// Usage: node dataplane_smoke.js <hyperseaport> <dp_node>
const crypto = require('crypto')
const { check, sleep, run, dhtNet, backend, client, many, failures } = require('./dataplane_lib')

const [hsp, dp] = process.argv.slice(2)

async function main () {
  const dht = await dhtNet(hsp)
  const backs = await Promise.all([0, 1, 2].map((i) => backend('inst' + i)))
  const seeds = [0, 1, 2].map(() => crypto.randomBytes(32).toString('hex'))
  const svcs = backs.map((b, i) => run(dp, ['service', '--bootstrap', dht.boot, '--target-port', String(b.port), '--seed', seeds[i], '--check', 'tcp', '--interval', '500'], 'svc' + i))
  const keys = []
  for (const s of svcs) keys.push((await s.wait(/^key ([0-9a-f]{64})/))[1])
  for (const s of svcs) await s.wait(/^register/)
  await sleep(1500) // let the announces land
  const proxy = run(dp, ['proxy', '--bootstrap', dht.boot, '--balance', 'round-robin'], 'proxy')
  const port = Number((await proxy.wait(/^port (\d+)/))[1])
  await proxy.ask('sync ' + keys.join(' '), /^synced 3/)
  const r = await client(port, { payload: 'hello' })
  check(r.id.startsWith('inst'), `first connection reaches an instance (${r.id}, ${r.ms} ms)`)
  check(r.reply.startsWith('got 5 '), 'bytes flow both ways and half-close works')
  const res = await many(60, 10, () => client(port, { payload: 'x'.repeat(1000) }))
  const errs = res.filter((x) => x.error)
  check(errs.length === 0, `60 connections, none failed ${errs.length ? errs[0].error : ''}`)
  const counts = {}
  for (const x of res) if (x.id) counts[x.id] = (counts[x.id] || 0) + 1
  check(Object.keys(counts).length === 3 && Object.values(counts).every((c) => c === 20), 'round-robin: 20 each ' + JSON.stringify(counts))
  proxy.send('stats')
  console.log((await proxy.wait(/^stats .*/))[0])
  proxy.send('exit')
  check(await proxy.exited === 0, 'proxy exits cleanly')
  for (const s of svcs) s.proc.kill('SIGTERM')
  for (const s of svcs) check(await s.exited === 0, s.name + ' drains and exits cleanly')
  for (const b of backs) await b.close()
  dht.stop()
  if (failures()) { console.error(`${failures()} checks failed`); process.exit(1) }
  console.log('dataplane_smoke: all checks passed')
}
main().catch((err) => { console.error(err); process.exit(1) })
