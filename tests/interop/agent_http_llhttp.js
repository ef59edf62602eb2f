// Differential test of src/agent/http.c against Node's own llhttp (node:_http_common).
// 1. Generated valid request streams (pipelined, Content-Length and chunked bodies with
//    extensions and trailers, keep-alive, upgrades) must give identical transcripts.
// 2. Mutated streams (random byte edits and classic smuggling edits) must never be accepted
//    by both parsers with different framing. Where only one accepts, llhttp accepting what
//    we reject is fine (we are stricter: Host required, any Transfer-Encoding other than a
//    single chunked...); us accepting what llhttp rejects is allowed only for the documented
//    leniencies listed in LAXER_OK.
// usage: node agent_http_llhttp.js <http_tool> [count]
'use strict'
const { HTTPParser, methods } = require('_http_common')
const { execFileSync } = require('child_process')
const crypto = require('crypto')

const tool = process.argv[2]
const COUNT = Number(process.argv[3] || 2000)
const seed = crypto.randomInt(1, 2 ** 31)
let rng = seed
const rnd = () => { rng ^= rng << 13; rng >>>= 0; rng ^= rng >>> 17; rng ^= rng << 5; rng >>>= 0; return rng }
const pick = (n) => rnd() % n
const choice = (a) => a[pick(a.length)]
const hex = (s) => (s.length ? Buffer.from(s, 'latin1').toString('hex') : '-')

// Where we accept and llhttp does not, for reasons that do not touch framing:
const LAXER_OK = new Set([
  'HPE_INVALID_METHOD', // we pass any token method through (a proxy should); llhttp knows a list
  'HPE_INVALID_URL' // llhttp checks URL syntax; we only refuse controls, spaces and non-ASCII
])

// ---- llhttp transcript, in http_tool's format -----------------------------------------
function llhttp (buf, response) {
  const p = new HTTPParser()
  p.initialize(response ? HTTPParser.RESPONSE : HTTPParser.REQUEST, {}, 0, 0)
  let out = ''
  let pendingHeaders = []
  let pendingUrl = ''
  let inBody = false
  let done = false
  let upgrade = false
  let lastKa = true
  let headersDone = false
  const hdrs = (list, tag) => { for (let i = 0; i < list.length; i += 2) out += ` ${tag} ${hex(list[i])} ${hex(list[i + 1])}` }
  p[HTTPParser.kOnHeaders] = (list, url) => {
    if (headersDone) { inBody = false; hdrs(list, 'T'); return } // trailers
    pendingHeaders = pendingHeaders.concat(list)
    pendingUrl += url || ''
  }
  p[HTTPParser.kOnHeadersComplete] = (major, minor, list, method, url, status, msg, up, ka) => {
    if (done) return 0
    const all = list ? pendingHeaders.concat(list) : pendingHeaders
    if (response) out += ` S ${status} ${hex(msg || '')} ${major}.${minor}`
    else out += ` M ${hex(methods[method] || '?')} ${hex(url || pendingUrl)} ${major}.${minor}`
    hdrs(all, 'H')
    out += ` ka=${ka ? 1 : 0} up=${up ? 1 : 0}`
    pendingHeaders = []
    pendingUrl = ''
    headersDone = true
    upgrade = up
    lastKa = ka
    return 0
  }
  p[HTTPParser.kOnBody] = (b) => {
    if (done) return
    if (!inBody) out += ' B '
    inBody = true
    out += Buffer.from(b).toString('hex')
  }
  p[HTTPParser.kOnMessageComplete] = () => {
    if (done) return
    inBody = false
    headersDone = false
    out += ' E'
    if (!lastKa && !upgrade) done = true
  }
  let r = p.execute(buf)
  let result
  if (done) result = 'done'
  else if (r instanceof Error) result = 'err ' + r.code
  else if (upgrade && !headersDone) result = 'upgraded'
  else {
    r = p.finish()
    result = done ? 'done' : r instanceof Error ? 'err ' + r.code : 'ok'
  }
  p.close()
  return (out + ' R ' + result).trim()
}

// ---- generators ---------------------------------------------------------------------------
const TCHAR = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&\'*+-.^_`|~'
const PATHCHAR = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&\'()*+,;=:@/'
const str = (alphabet, min, max) => {
  let s = ''
  const n = min + pick(max - min + 1)
  for (let i = 0; i < n; i++) s += alphabet[pick(alphabet.length)]
  return s
}
function value () {
  let s = ''
  const n = pick(20)
  for (let i = 0; i < n; i++) {
    const k = pick(10)
    s += k === 0 ? ' ' : k === 1 ? '\t' : String.fromCharCode(0x21 + pick(0x5e))
  }
  return (pick(3) ? ' ' : '') + s.trim() + (pick(4) ? '' : ' \t')
}
function bodyBytes (n) { let s = ''; for (let i = 0; i < n; i++) s += String.fromCharCode(pick(256)); return s }

function message (last) {
  const v11 = pick(6) !== 0
  let method = choice(['GET', 'GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'PURGE', 'PROPFIND'])
  let target = '/' + str(PATHCHAR, 0, 30) + (pick(3) ? '' : '?' + str(PATHCHAR + '?', 0, 20))
  const headers = []
  if (v11 || pick(2)) headers.push(['Host', choice(['a', 'example.com', 'h:8080', '127.0.0.1'])])
  for (let i = pick(6); i > 0; i--) headers.push([str(TCHAR, 1, 12), value()])
  const kind = pick(4) // 0 none, 1 length, 2 chunked (1.1 only), 3 upgrade (last only)
  let body = ''
  if (kind === 1) {
    const b = bodyBytes(pick(300))
    headers.push([choice(['Content-Length', 'content-length']), String(b.length)])
    body = b
  } else if (kind === 2 && v11) {
    headers.push([choice(['Transfer-Encoding', 'transfer-encoding']), choice(['chunked', 'Chunked', ' chunked '])])
    for (let i = pick(4); i > 0; i--) {
      const b = bodyBytes(1 + pick(100))
      let ext = ''
      if (!pick(3)) ext = ';' + str(TCHAR, 1, 5) + (pick(2) ? '=' + (pick(2) ? str(TCHAR, 1, 5) : '"q ' + str(TCHAR, 0, 4) + '"') : '')
      body += b.length.toString(16) + ext + '\r\n' + b + '\r\n'
    }
    body += '0\r\n'
    for (let i = pick(3) ? 0 : 1 + pick(2); i > 0; i--) body += str(TCHAR, 1, 8) + ': ' + str(TCHAR, 0, 8) + '\r\n'
    body += '\r\n'
  } else if (kind === 3 && last && v11) {
    if (pick(2)) {
      headers.push(['Upgrade', 'websocket'], ['Connection', 'Upgrade'])
    } else {
      method = 'CONNECT'
      target = 'h:' + (1 + pick(65535))
    }
    body = bodyBytes(pick(20))
  }
  if (last && kind !== 3 && !pick(4)) headers.push(['Connection', v11 ? 'close' : 'close'])
  if (!v11 && !last) headers.push(['Connection', 'keep-alive'])
  let s = `${method} ${target} HTTP/1.${v11 ? 1 : 0}\r\n`
  for (const [n, v] of headers) s += `${n}:${v}\r\n`
  return s + '\r\n' + body
}
function response (last) {
  const v11 = pick(6) !== 0
  let status = choice([200, 200, 201, 204, 301, 304, 404, 500, 100, 103, 101])
  if (status === 101 && !(last && v11)) status = 200
  const reason = choice(['OK', '', 'Not Found', 'Some reason', 'x\ty'])
  const headers = []
  for (let i = pick(5); i > 0; i--) headers.push([str(TCHAR, 1, 12), value()])
  let body = ''
  let eof = false
  if (status === 101) {
    headers.push(['Upgrade', 'websocket'], ['Connection', 'Upgrade'])
    body = bodyBytes(pick(20))
  } else if (status < 200 || status === 204 || status === 304) {
    if (status >= 200 && pick(2)) headers.push(['Content-Length', String(pick(100))])
  } else {
    const kind = pick(last ? 4 : 3)
    if (kind === 0) {
      const b = bodyBytes(pick(300))
      headers.push(['Content-Length', String(b.length)])
      body = b
    } else if (kind === 1 && v11) {
      headers.push(['Transfer-Encoding', 'chunked'])
      for (let i = pick(4); i > 0; i--) {
        const b = bodyBytes(1 + pick(100))
        body += b.length.toString(16) + '\r\n' + b + '\r\n'
      }
      body += '0\r\n\r\n'
    } else if (kind === 2) {
      headers.push(['Content-Length', '0'])
    } else {
      eof = true // until the connection closes
      body = bodyBytes(pick(300))
    }
  }
  if (!v11 && !last && !eof) headers.push(['Connection', 'keep-alive'])
  if (last && !eof && status !== 101 && !pick(4)) headers.push(['Connection', 'close'])
  let s = `HTTP/1.${v11 ? 1 : 0} ${status}${reason || pick(2) ? ' ' + reason : ''}\r\n`
  for (const [n, v] of headers) s += `${n}:${v}\r\n`
  s += '\r\n' + body
  if (status >= 100 && status < 200 && status !== 101) s += response(last) // interim, then final
  return s
}
function responseStream () {
  const n = 1 + pick(3)
  let s = ''
  for (let i = 0; i < n; i++) s += response(i === n - 1)
  return s
}
function stream () {
  const n = 1 + pick(3)
  let s = ''
  for (let i = 0; i < n; i++) s += message(i === n - 1)
  return s
}

const SPECIAL = [' ', '\t', '\r', '\n', '\0', ':', ',', ';', '"', '0', 'f', 'G', '\x7f', '\x80', '\x0b', '-', '+']
function mutate (s) {
  const edits = 1 + pick(3)
  for (let e = 0; e < edits; e++) {
    const i = pick(s.length + 1)
    const k = pick(10)
    const c = pick(3) ? choice(SPECIAL) : String.fromCharCode(pick(256))
    if (k < 3) s = s.slice(0, i) + c + s.slice(i + 1)
    else if (k < 5) s = s.slice(0, i) + c + s.slice(i)
    else if (k < 7) s = s.slice(0, i) + s.slice(i + 1)
    else {
      // classic smuggling edits, inserted after the first line
      const at = s.indexOf('\r\n') + 2
      const add = choice([
        'Transfer-Encoding: chunked\r\n', 'Content-Length: 5\r\n', 'Content-Length: 0\r\n',
        'Transfer-Encoding: gzip, chunked\r\n', 'Transfer-Encoding: chunked, identity\r\n',
        'Transfer-Encoding : chunked\r\n', 'Transfer-Encoding:\tchunked\r\n', ' Transfer-Encoding: chunked\r\n',
        'Content-Length: 5\r\nContent-Length: 6\r\n', 'Content-Length: +5\r\n', 'X: y\r\n folded\r\n',
        'Transfer-Encoding: xchunked\r\n', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n',
        'Content-Length: 1, 1\r\n', 'Host: b\r\n', 'Connection: close\r\n', 'X: a\nY: b\r\n'
      ])
      if (at > 1) s = s.slice(0, at) + add + s.slice(at)
    }
  }
  return s
}

// Ours ends the connection after a message llhttp would keep alive (e.g. both "close" and
// "keep-alive" were sent: close wins for us): the same up to there, and never a smuggling risk.
// The same, the other way round, is llhttp not trimming a trailing HTAB from "keep-alive".
function closesEarlier (mine, theirs) {
  if (!mine.endsWith(' R done')) return false
  const body = mine.slice(0, -' R done'.length)
  const i = body.lastIndexOf(' ka=0 ')
  if (i < 0) return false
  return theirs.startsWith(body.slice(0, i) + ' ka=1 ' + body.slice(i + 6))
}
const keepAliveDisagreement = (mine, theirs) => closesEarlier(mine, theirs) || closesEarlier(theirs, mine)

// llhttp does not trim a trailing HTAB (which is OWS) before matching "Connection: upgrade":
// we upgrade where it reads on. Same transcript otherwise.
function upgradeTabQuirk (mine, theirs, input) {
  if (!mine.endsWith(' R upgraded') || !/\nConnection:[^\r]*\t\r\n/i.test(input)) return false
  const body = mine.slice(0, -' R upgraded'.length)
  const i = body.lastIndexOf(' up=1 ')
  return i >= 0 && theirs.startsWith(body.slice(0, i) + ' up=0 ' + body.slice(i + 6))
}

// ---- run ----------------------------------------------------------------------------------
let failures = 0
const fail = (m) => { if (failures++ < 15) console.error('FAIL ' + m) }
const cases = []
for (let i = 0; i < COUNT; i++) cases.push({ s: stream(), valid: true, response: false })
for (let i = 0; i < COUNT; i++) cases.push({ s: responseStream(), valid: true, response: true })
const nValid = cases.length
for (let i = 0; i < nValid * 2; i++) {
  const base = cases[i % nValid]
  cases.push({ s: mutate(base.s), valid: false, response: base.response })
}
const input = cases.map((c) => `${choice([0, 0, 1, 2, 7, 64])}:${c.response ? 'r:' : ''}${Buffer.from(c.s, 'latin1').toString('hex')}`).join('\n') + '\n'
const ours = execFileSync(tool, { input, maxBuffer: 1 << 30 }).toString().trim().split('\n')
if (ours.length !== cases.length) { console.error('tool printed ' + ours.length + ' lines for ' + cases.length); process.exit(1) }

const stats = { same: 0, bothErr: 0, stricter: {}, laxer: {} }
const bump = (o, k) => { o[k] = (o[k] || 0) + 1 }
for (let i = 0; i < cases.length; i++) {
  const theirs = llhttp(Buffer.from(cases[i].s, 'latin1'), cases[i].response)
  const mine = ours[i]
  const show = () => `seed=${seed} case ${i} (${cases[i].response ? 'response' : 'request'})\n  input ${JSON.stringify(cases[i].s)}\n  ours  ${mine}\n  llhttp ${theirs}`
  if (mine === theirs) { stats.same++; continue }
  if (!cases[i].valid && keepAliveDisagreement(mine, theirs)) { bump(stats.stricter, 'keep_alive_disagreement'); continue }
  if (!cases[i].valid && upgradeTabQuirk(mine, theirs, cases[i].s)) { bump(stats.laxer, 'llhttp_untrimmed_tab_in_upgrade'); continue }
  const myErr = /(?:^| )R err (\S+)$/.exec(mine)
  const theirErr = /(?:^| )R err (\S+)$/.exec(theirs)
  if (cases[i].valid) { fail('valid stream parsed differently: ' + show()); continue }
  if (myErr && theirErr) { stats.bothErr++; continue }
  if (myErr) { bump(stats.stricter, myErr[1]); continue }
  if (theirErr) {
    // Both agree up to where llhttp stopped? Our extra leniency must be a known one.
    if (LAXER_OK.has(theirErr[1])) bump(stats.laxer, theirErr[1])
    else fail('we accept what llhttp rejects (' + theirErr[1] + '): ' + show())
    continue
  }
  fail('both accept with different framing: ' + show())
}
console.log(`agent_http_llhttp: seed=${seed} ${cases.length} streams (${COUNT} valid requests, ${COUNT} valid responses, ${nValid * 2} mutated): ` +
  `${stats.same} identical, ${stats.bothErr} rejected by both`)
console.log('  we reject, llhttp accepts: ' + JSON.stringify(stats.stricter))
console.log('  we accept, llhttp rejects (allowed): ' + JSON.stringify(stats.laxer))
if (failures) console.error(`${failures} failures`)
process.exit(failures ? 1 : 0)
