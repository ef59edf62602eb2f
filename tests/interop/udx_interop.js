// C (hsp_udx, tests/udx/udx_peer.c) <-> JS (udx-native 1.21.3) on 127.0.0.1, both directions.
const { startC, jsEndpoint, jsSource, lossyForwarder, check, scenario, done, sleep } = require('./udx_lib.js')

const MiB = 1024 * 1024
const BIG = Number(process.env.HSP_UDX_BIG_MB || 100) * MiB

// JS writes n bytes, C sinks and ends after EOF.
async function jsToC (n, extra = {}) {
  const js = jsEndpoint(2, extra.jsOpts || {})
  const c = startC(['--id', '1', '--remote-id', '2', '--remote-port', String(js.port), '--mode', 'sink', ...(extra.cArgs || [])])
  const { port } = await c.wait('listening')
  js.stream.connect(js.socket, 1, port, '127.0.0.1', extra.connectOpts || {})
  const sha = await jsSource(js.stream, n)
  const end = await c.wait('end', 120000)
  const close = await c.wait('close', 120000)
  await js.closedP
  check(end.bytes === n && end.sha256 === sha, `JS->C ${n} bytes intact (C got ${end.bytes})`)
  check(close.status === 0 && js.error === null, `JS->C ${n}: clean close (C ${close.status}, JS ${js.error})`)
  await c.exit()
  js.socket.close()
}

// C writes n bytes, JS sinks and ends after EOF.
async function cToJs (n, extra = {}) {
  const js = jsEndpoint(2)
  js.stream.on('end', () => js.stream.end())
  const c = startC(['--id', '1', '--remote-id', '2', '--remote-port', String(js.port), '--mode', 'source', '--bytes', String(n), ...(extra.cArgs || [])])
  const { port } = await c.wait('listening')
  js.stream.connect(js.socket, 1, port, '127.0.0.1', extra.connectOpts || {})
  const sent = await c.wait('sent', 120000)
  const close = await c.wait('close', 120000)
  await js.closedP
  check(js.rxBytes === n && js.rxHash === sent.sha256, `C->JS ${n} bytes intact (JS got ${js.rxBytes})`)
  check(close.status === 0 && js.error === null, `C->JS ${n}: clean close (C ${close.status}, JS ${js.error})`)
  await c.exit()
  js.socket.close()
}

async function main () {
  await scenario('hello C->JS', async () => {
    const js = jsEndpoint(2)
    const chunks = []
    js.stream.on('data', (d) => chunks.push(d))
    js.stream.on('end', () => js.stream.end())
    const c = startC(['--id', '1', '--remote-id', '2', '--remote-port', String(js.port), '--mode', 'hello'])
    const { port } = await c.wait('listening')
    js.stream.connect(js.socket, 1, port, '127.0.0.1')
    const close = await c.wait('close', 10000)
    await js.closedP
    check(Buffer.concat(chunks).toString() === 'hello' && js.ended, 'JS received "hello" + end')
    check(close.status === 0 && js.error === null, 'hello C->JS closes cleanly on both sides')
    await c.exit(); js.socket.close()
  })

  await scenario('hello JS->C', async () => {
    const js = jsEndpoint(2)
    const c = startC(['--id', '1', '--remote-id', '2', '--remote-port', String(js.port), '--mode', 'sink'])
    const { port } = await c.wait('listening')
    js.stream.connect(js.socket, 1, port, '127.0.0.1')
    js.stream.write(Buffer.from('hello')); js.stream.end()
    const end = await c.wait('end', 10000)
    const close = await c.wait('close', 10000)
    await js.closedP
    check(end.bytes === 5 && end.sha256 === require('crypto').createHash('sha256').update('hello').digest('hex'), 'C received "hello" + EOF')
    check(close.status === 0 && js.error === null, 'hello JS->C closes cleanly')
    await c.exit(); js.socket.close()
  })

  for (const n of [0, 1, 65536, BIG]) {
    await scenario(`JS->C ${n}`, () => jsToC(n))
    await scenario(`C->JS ${n}`, () => cToJs(n))
  }

  await scenario('seq wrap JS->C', () => jsToC(MiB, { jsOpts: { seq: 4294967280 }, cArgs: ['--ack', '4294967280'] }))
  await scenario('seq wrap C->JS', () => cToJs(MiB, { cArgs: ['--seq', '4294967280'], connectOpts: { ack: 4294967280 } }))

  await scenario('messages and raw datagrams both ways', async () => {
    const js = jsEndpoint(2)
    const c = startC(['--id', '1', '--remote-id', '2', '--remote-port', String(js.port), '--mode', 'sink', '--send-message'])
    const { port } = await c.wait('listening')
    js.stream.connect(js.socket, 1, port, '127.0.0.1')
    const seqBefore = js.stream.bytesWritten || 0
    js.stream.send(Buffer.from('message-from-js'))
    js.socket.send(Buffer.from('raw-from-js'), port, '127.0.0.1')
    const m = await c.wait((e) => e.event === 'message', 5000)
    const r = await c.wait((e) => e.event === 'raw' && e.text === 'raw-from-js', 5000)
    check(m.text === 'message-from-js', 'C got the JS stream message')
    check(r.text === 'raw-from-js', 'C got the JS raw datagram via the socket callback')
    // an unknown-id UDX packet from JS shows up raw at C (not as a stream packet)
    const unk = Buffer.alloc(21); unk[0] = 0xff; unk[1] = 1; unk.writeUInt32LE(99, 4)
    js.socket.send(unk, port, '127.0.0.1')
    const u = await c.wait((e) => e.event === 'raw' && e.bytes === 21, 5000)
    check(!!u, 'UDX packet for an unknown id reaches C raw callback')
    for (let i = 0; i < 100 && (!js.messages.includes('message-from-c') || !js.raw.some((b) => b.toString() === 'raw-from-c')); i++) await sleep(20)
    check(js.messages.includes('message-from-c'), 'JS got the C stream message')
    check(js.raw.some((b) => b.toString() === 'raw-from-c'), 'JS got the C raw datagram')
    check(seqBefore === (js.stream.bytesWritten || 0), 'messages do not consume stream data')
    js.stream.end()
    const close = await c.wait('close', 10000)
    await js.closedP
    check(close.status === 0, 'stream still closes cleanly after messages')
    await c.exit(); js.socket.close()
  })

  await scenario('JS destroy mid-transfer -> C ECONNRESET', async () => {
    const js = jsEndpoint(2)
    let got = 0
    js.stream.on('data', (d) => { got += d.length; if (got >= MiB && !js.stream.destroying) js.stream.destroy() })
    const c = startC(['--id', '1', '--remote-id', '2', '--remote-port', String(js.port), '--mode', 'source', '--bytes', String(1024 * MiB)])
    const { port } = await c.wait('listening')
    js.stream.connect(js.socket, 1, port, '127.0.0.1')
    const close = await c.wait('close', 20000)
    check(close.status === -4, `C reports reset (status ${close.status} ${close.error})`)
    await js.closedP; await c.exit(); js.socket.close()
  })

  await scenario('C destroy mid-transfer -> JS ECONNRESET', async () => {
    const js = jsEndpoint(2)
    const c = startC(['--id', '1', '--remote-id', '2', '--remote-port', String(js.port), '--mode', 'sink', '--destroy-after', String(MiB)])
    const { port } = await c.wait('listening')
    js.stream.connect(js.socket, 1, port, '127.0.0.1')
    jsSource(js.stream, 1024 * MiB)
    const close = await c.wait('close', 20000)
    await Promise.race([js.closedP, sleep(15000)])
    check(close.status === 0, 'C destroy closes C with status 0')
    check(js.closed && js.error === 'ECONNRESET', `JS gets ECONNRESET (${js.error})`)
    await c.exit(); js.socket.close()
  })

  await scenario('IPv6 ::1 C->JS', async () => {
    const UDX = require('udx-native')
    const u = new UDX(); const socket = u.createSocket(); socket.bind(0, '::1')
    const stream = u.createStream(2, { firewall: () => false })
    const h = require('crypto').createHash('sha256'); let n = 0
    stream.on('data', (d) => { n += d.length; h.update(d) })
    stream.on('end', () => stream.end())
    const closed = new Promise((resolve) => stream.on('close', resolve))
    const c = startC(['--host', '::1', '--id', '1', '--remote-id', '2', '--remote-port', String(socket.address().port), '--mode', 'source', '--bytes', String(MiB)])
    const { port } = await c.wait('listening')
    stream.connect(socket, 1, port, '::1')
    const sent = await c.wait('sent')
    const close = await c.wait('close')
    await closed
    check(n === MiB && h.digest('hex') === sent.sha256 && close.status === 0, 'IPv6 1 MiB C->JS intact, clean close')
    await c.exit(); socket.close()
  })

  await scenario('JS relayTo between two C endpoints', async () => {
    const UDX = require('udx-native')
    const u = new UDX(); const socket = u.createSocket(); socket.bind(0, '127.0.0.1')
    const rport = socket.address().port
    const sink = startC(['--id', '2', '--remote-id', '20', '--remote-port', String(rport), '--mode', 'sink'])
    const p2 = (await sink.wait('listening')).port
    const r10 = u.createStream(10); const r20 = u.createStream(20)
    r20.connect(socket, 2, p2, '127.0.0.1')
    const src = startC(['--id', '1', '--remote-id', '10', '--remote-port', String(rport), '--mode', 'source', '--bytes', String(5 * MiB)])
    const p1 = (await src.wait('listening')).port
    r10.connect(socket, 1, p1, '127.0.0.1')
    r10.relayTo(r20); r20.relayTo(r10)
    const sent = await src.wait('sent'); const end = await sink.wait('end', 60000)
    const c1 = await src.wait('close', 60000); const c2 = await sink.wait('close', 60000)
    check(end.sha256 === sent.sha256 && end.bytes === 5 * MiB, 'C->C 5 MiB through a udx-native relay intact')
    check(c1.status === 0 && c2.status === 0, 'both C ends close cleanly through the relay')
    r10.destroy(); r20.destroy()
    await src.exit(); await sink.exit(); socket.close()
  })

  await scenario('keepalive both ways: heartbeats are answered with ACKs', async () => {
    const fw = lossyForwarder({ drop: 0, reorder: 0 })
    await fw.ready
    const js = jsEndpoint(2)
    fw.A = js.port
    const c = startC(['--id', '1', '--remote-id', '2', '--remote-port', String(fw.port), '--mode', 'sink', '--keepalive', '50'])
    fw.B = (await c.wait('listening')).port
    js.stream.connect(js.socket, 1, fw.port, '127.0.0.1')
    js.stream.setKeepalive(50)
    await sleep(700)
    const st = { ...fw.stats }
    check((st.hbA || 0) >= 5 && (st.ackB || 0) >= (st.hbA || 0) - 1, `C answers JS heartbeats (${st.hbA} heartbeats, ${st.ackB} ACKs)`)
    check((st.hbB || 0) >= 5 && (st.ackA || 0) >= (st.hbB || 0) - 1, `JS answers C heartbeats (${st.hbB} heartbeats, ${st.ackA} ACKs)`)
    const sha = await jsSource(js.stream, 100000)
    const end = await c.wait('end', 10000)
    check(end.sha256 === sha, 'data after keepalive period intact')
    await c.wait('close'); await js.closedP; await c.exit(); js.socket.close(); fw.close()
  })
  done()
}
main()
