// Shared helper for the dht live interop tests: runs tests/dht/dht_node_tool and talks to
// it line by line (not a test itself).
const { spawn } = require('child_process')

exports.startC = function startC (tool, args) {
  const proc = spawn(tool, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = []
  const waiters = []
  let buf = ''
  proc.stdout.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      lines.push(line)
      for (const w of waiters.slice()) {
        if (w.re.test(line)) { waiters.splice(waiters.indexOf(w), 1); clearTimeout(w.timer); w.resolve(line) }
      }
    }
  })
  return {
    proc,
    lines,
    send (cmd) { proc.stdin.write(cmd + '\n') },
    wait (re, ms = 20000) {
      const found = lines.find((l) => re.test(l))
      if (found) { lines.splice(lines.indexOf(found), 1); return Promise.resolve(found) }
      return new Promise((resolve, reject) => {
        const w = { re, resolve, timer: setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); reject(new Error('timeout waiting for ' + re)) }, ms) }
        waiters.push(w)
      })
    },
    async ask (cmd, re) { this.send(cmd); const l = await this.wait(re); lines.splice(lines.indexOf(l), 1); return l },
    stop () { try { proc.stdin.end('exit\n') } catch {} }
  }
}
