#!/usr/bin/env node
// Runs kinesalite (a local Kinesis) through its Node API so that it binds to
// one address (loopback by default). kinesalite's own CLI calls listen(port)
// without a host and so listens on every interface.
//
// Prints exactly one line to stdout once it is listening:
//   kinesalite listening on http://127.0.0.1:PORT
// Scripts and test helpers wait for that line and parse PORT from it (with
// --port 0 the kernel picks a free port). Everything else goes to stderr,
// except the answers to clock commands (--clock-control, test only).
'use strict'

const { parseArgs } = require('node:util')
const kinesalite = require('kinesalite')

const usage = `Usage: node server.js [options]

Options:
  --host HOST              address to bind (default 127.0.0.1)
  --port N                 port to listen on; 0 picks a free one (default 4567)
  --path DIR               LevelDB directory for on-disk persistence (default: in memory)
  --shard-limit N          total open shards allowed across all streams (default 1000)
  --create-stream-ms MS    time a new stream stays CREATING (default 50)
  --delete-stream-ms MS    time a deleted stream stays DELETING (default 50)
  --update-stream-ms MS    time a resharded stream stays UPDATING (default 50)
  --clock-control          TEST ONLY: let the clock be moved forward at run time
                           by lines on stdin (see "Clock control" below)
  --clock-offset-ms MS     TEST ONLY, with --clock-control: start with the clock
                           MS ahead of the real one (a restart keeps an advanced clock)
  --help                   print this help

Clock control (test only, off by default): kinesalite reads Date.now() for
sequence numbers, iterator ages and retention (a record older than the
stream's retention, at least 24 h, is left out of GetRecords and deleted).
With --clock-control, each line "advance MS" on stdin moves that clock MS
milliseconds forward for good, and is answered on stdout, once in effect, by
  clock advanced MS ms offset TOTAL ms
A bad line is answered "clock error: WHY". The clock never goes back: that
would make iterators "from the future" and sequence numbers go backwards.
`

function fail(message) {
  process.stderr.write(`server.js: ${message}\n\n${usage}`)
  process.exit(2)
}

// nonNegativeInt parses a flag value strictly: "12abc" or "-1" is an error
// rather than a silently different number.
function nonNegativeInt(flag, value) {
  if (!/^\d+$/.test(value)) fail(`--${flag} must be a non-negative integer, got ${JSON.stringify(value)}`)
  return Number(value)
}

let parsed
try {
  parsed = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '4567' },
      path: { type: 'string' },
      'shard-limit': { type: 'string', default: '1000' },
      'create-stream-ms': { type: 'string', default: '50' },
      'delete-stream-ms': { type: 'string', default: '50' },
      'update-stream-ms': { type: 'string', default: '50' },
      'clock-control': { type: 'boolean', default: false },
      'clock-offset-ms': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  })
} catch (err) {
  fail(err.message)
}
const opts = parsed.values
if (opts.help) {
  process.stdout.write(usage)
  process.exit(0)
}

const port = nonNegativeInt('port', opts.port)
if (port > 65535) fail(`--port must be at most 65535, got ${port}`)

// Test-only clock shift. Off by default: Date.now is left alone.
if (opts['clock-control']) {
  const realNow = Date.now
  let offsetMs = opts['clock-offset-ms'] === undefined ? 0 : nonNegativeInt('clock-offset-ms', opts['clock-offset-ms'])
  // kinesalite calls Date.now() at each request, so replacing it moves its clock.
  Date.now = () => realNow.call(Date) + offsetMs
  process.stderr.write(`kinesalite: TEST ONLY clock control on, clock offset ${offsetMs} ms\n`)
  const lines = require('node:readline').createInterface({ input: process.stdin, terminal: false })
  lines.on('line', (line) => {
    const m = /^advance (\d+)$/.exec(line.trim())
    if (!m || !Number.isSafeInteger(Number(m[1]))) {
      process.stdout.write(`clock error: want "advance MS" (a non-negative integer), got ${JSON.stringify(line)}\n`)
      return
    }
    offsetMs += Number(m[1])
    process.stderr.write(`kinesalite: clock advanced ${m[1]} ms, offset ${offsetMs} ms\n`)
    process.stdout.write(`clock advanced ${m[1]} ms offset ${offsetMs} ms\n`)
  })
  // stdin closed (the test is gone or never sends): the clock just stays where it is.
  lines.on('close', () => {})
} else if (opts['clock-offset-ms'] !== undefined) {
  fail('--clock-offset-ms needs --clock-control')
}

const server = kinesalite({
  path: opts.path, // undefined: kinesalite keeps everything in memory (memdown)
  shardLimit: nonNegativeInt('shard-limit', opts['shard-limit']),
  createStreamMs: nonNegativeInt('create-stream-ms', opts['create-stream-ms']),
  deleteStreamMs: nonNegativeInt('delete-stream-ms', opts['delete-stream-ms']),
  updateStreamMs: nonNegativeInt('update-stream-ms', opts['update-stream-ms']),
})

// kinesalite's request handler rethrows every request stream error
// (`req.on('error', err => { throw err })`), so a client that disconnects
// while sending a body ("aborted", ECONNRESET: a killed test process, a
// timed-out SDK call) kills the whole server. Wrap the handler: once it has
// attached its listeners, swap that one for a listener that logs and drops
// the request, as a real endpoint would.
for (const handler of server.listeners('request')) {
  server.removeListener('request', handler)
  server.on('request', (req, res) => {
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`
    handler(req, res)
    req.removeAllListeners('error')
    req.on('error', (err) => {
      process.stderr.write(`kinesalite: request from ${peer} failed, dropped: ${err.code || ''} ${err.message}\n`)
      res.destroy()
    })
  })
}

server.on('error', (err) => {
  process.stderr.write(`kinesalite: ${err.stack || err}\n`)
  process.exit(1)
})

server.listen(port, opts.host, () => {
  const address = server.address()
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  process.stdout.write(`kinesalite listening on http://${host}:${address.port}\n`)
})

let stopping = false
function stop(signal) {
  if (stopping) return
  stopping = true
  process.stderr.write(`kinesalite: ${signal} received, closing\n`)
  // Do not hang on a client that keeps a request open: exit anyway after a
  // short grace period. unref so a clean close exits at once.
  setTimeout(() => {
    process.stderr.write('kinesalite: close timed out, exiting\n')
    process.exit(1)
  }, 5000).unref()
  // kinesalite's close() closes the LevelDB store first (flushing it to disk
  // with --path), then the HTTP server.
  server.close((err) => {
    if (err) {
      process.stderr.write(`kinesalite: close: ${err.stack || err}\n`)
      process.exit(1)
    }
    process.exit(0)
  })
  // SDK clients hold keep-alive connections open, which would keep the HTTP
  // server's close waiting; drop them.
  server.closeAllConnections()
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
