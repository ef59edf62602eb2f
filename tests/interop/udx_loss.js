// 20 MiB through a UDP forwarder that drops 5 % of DATA/END packets and delays ~10 % of all
// packets by 1-3 ms (reordering): C->JS, JS->C and C->C must arrive intact and close cleanly.
// Pure ACKs are dropped too where the receiver of the last ACK is C, which keeps re-ACKing
// END retransmits after closing; udx-native does not (docs/protocol/udx.md §3.5), so a lost
// final ACK towards it would end in a spurious ETIMEDOUT that is the reference's behaviour.
const { startC, jsEndpoint, jsSource, lossyForwarder, check, scenario, done } = require('./udx_lib.js')

const N = 20 * 1024 * 1024
const DROP = 0.05

async function viaForwarder (dir) {
  const fw = lossyForwarder({ drop: DROP, reorder: 0.1, dropAcks: (fromA) => !fromA, seed: dir.length })
  await fw.ready
  const js = jsEndpoint(2)
  fw.A = js.port // side A = JS
  const mode = dir === 'C->JS' ? 'source' : 'sink'
  if (mode === 'source') js.stream.on('end', () => js.stream.end())
  const c = startC(['--id', '1', '--remote-id', '2', '--remote-port', String(fw.port), '--mode', mode, '--bytes', String(N), '--linger-ms', '3000'])
  const { port } = await c.wait('listening')
  fw.B = port
  js.stream.connect(js.socket, 1, fw.port, '127.0.0.1')
  const t0 = Date.now()
  let sha
  if (mode === 'sink') sha = await jsSource(js.stream, N)
  const end = mode === 'sink' ? await c.wait('end', 180000) : null
  const sent = mode === 'source' ? await c.wait('sent', 180000) : null
  const close = await c.wait('close', 180000)
  await js.closedP
  const ms = Date.now() - t0
  if (mode === 'sink') check(end.bytes === N && end.sha256 === sha, `${dir} 20 MiB intact through 5% loss + reordering`)
  else check(js.rxBytes === N && js.rxHash === sent.sha256, `${dir} 20 MiB intact through 5% loss + reordering`)
  check(close.status === 0 && js.error === null, `${dir} clean close (C ${close.status}, JS ${js.error})`)
  console.log(`  ${dir}: ${ms} ms, forwarder ${JSON.stringify(fw.stats)}, C retransmits ${close.retransmits}, C RTOs ${close.rto}`)
  c.kill(); js.socket.close(); fw.close()
}

async function cToC () {
  const fw = lossyForwarder({ drop: DROP, reorder: 0.1, dropAcks: () => true, seed: 7 })
  await fw.ready
  const sink = startC(['--id', '2', '--remote-id', '1', '--remote-port', String(fw.port), '--mode', 'sink', '--linger-ms', '3000'])
  fw.A = (await sink.wait('listening')).port
  const src = startC(['--id', '1', '--remote-id', '2', '--remote-port', String(fw.port), '--mode', 'source', '--bytes', String(N), '--linger-ms', '3000'])
  fw.B = (await src.wait('listening')).port
  const t0 = Date.now()
  const sent = await src.wait('sent', 180000)
  const end = await sink.wait('end', 180000)
  const c1 = await src.wait('close', 180000)
  const c2 = await sink.wait('close', 180000)
  check(end.bytes === N && end.sha256 === sent.sha256, 'C->C 20 MiB intact through 5% loss (DATA and ACKs) + reordering')
  check(c1.status === 0 && c2.status === 0, `C->C clean close (${c1.status}, ${c2.status})`)
  console.log(`  C->C: ${Date.now() - t0} ms, forwarder ${JSON.stringify(fw.stats)}, retransmits ${c1.retransmits}, RTOs ${c1.rto}`)
  src.kill(); sink.kill(); fw.close()
}

async function main () {
  await scenario('C->JS lossy', () => viaForwarder('C->JS'))
  await scenario('JS->C lossy', () => viaForwarder('JS->C'))
  await scenario('C->C lossy', cToC)
  done()
}
main()
