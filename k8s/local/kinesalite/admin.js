#!/usr/bin/env node
// Small admin commands against a kinesalite endpoint, for k8s/local/stack.sh.
// Speaks the Kinesis JSON protocol over plain HTTP with Node's built-ins so
// the stack needs no SDK in node_modules. kinesalite checks that a request
// carries a well-formed Authorization header but never verifies the
// signature, so a dummy one is enough.
//
//   node admin.js wait ENDPOINT [TIMEOUT_SECONDS]
//       exit 0 once ENDPOINT answers a ListStreams call.
//   node admin.js ensure-stream ENDPOINT NAME SHARDS [TIMEOUT_SECONDS]
//       create stream NAME with SHARDS shards unless it exists, then wait
//       until it is ACTIVE. An existing stream with another shard count is
//       left alone and reported on stderr (resharding is not our business).
'use strict'

const http = require('node:http')

const DUMMY_AUTHORIZATION =
  'AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/kinesis/aws4_request, ' +
  'SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0'

class KinesisError extends Error {
  constructor(type, message, statusCode) {
    super(`${type}: ${message || '(no message)'} (HTTP ${statusCode})`)
    this.type = type
  }
}

// call sends one Kinesis API operation and resolves with the parsed reply.
function call(endpoint, operation, body) {
  const payload = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL('/', endpoint),
      {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-amz-json-1.1',
          'Content-Length': Buffer.byteLength(payload),
          'X-Amz-Target': `Kinesis_20131202.${operation}`,
          'X-Amz-Date': new Date().toISOString().replace(/[-:]|\.\d{3}/g, ''),
          Authorization: DUMMY_AUTHORIZATION,
        },
        timeout: 5000,
      },
      (res) => {
        const chunks = []
        res.on('data', (chunk) => chunks.push(chunk))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let reply = {}
          if (text) {
            try {
              reply = JSON.parse(text)
            } catch (err) {
              return reject(new Error(`${operation}: unparsable reply (HTTP ${res.statusCode}): ${text}`))
            }
          }
          if (res.statusCode !== 200) {
            const type = String(reply.__type || 'UnknownError').replace(/^.*#/, '')
            return reject(new KinesisError(type, reply.message, res.statusCode))
          }
          resolve(reply)
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error(`${operation}: timed out after 5s`)))
    req.on('error', (err) => reject(new Error(`${operation} ${endpoint}: ${err.message}`)))
    req.end(payload)
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// poll retries attempt every 100ms until it returns true or the deadline
// passes; the last error is reported so a timeout says what went wrong.
async function poll(what, timeoutSeconds, attempt) {
  const deadline = Date.now() + timeoutSeconds * 1000
  let lastError
  for (;;) {
    try {
      if (await attempt()) return
      lastError = undefined
    } catch (err) {
      lastError = err
    }
    if (Date.now() >= deadline) {
      throw new Error(`${what}: not done after ${timeoutSeconds}s${lastError ? `: ${lastError.message}` : ''}`)
    }
    await sleep(100)
  }
}

async function waitReady(endpoint, timeoutSeconds) {
  await poll(`waiting for kinesalite at ${endpoint}`, timeoutSeconds, async () => {
    await call(endpoint, 'ListStreams', {})
    return true
  })
}

async function ensureStream(endpoint, name, shards, timeoutSeconds) {
  try {
    await call(endpoint, 'CreateStream', { StreamName: name, ShardCount: shards })
    process.stderr.write(`created stream ${name} with ${shards} shards\n`)
  } catch (err) {
    // Another caller may have created it first: that is the idempotent path.
    if (!(err instanceof KinesisError) || err.type !== 'ResourceInUseException') throw err
  }
  await poll(`waiting for stream ${name} to be ACTIVE`, timeoutSeconds, async () => {
    const { StreamDescriptionSummary: summary } = await call(endpoint, 'DescribeStreamSummary', { StreamName: name })
    if (summary.StreamStatus !== 'ACTIVE') return false
    if (summary.OpenShardCount !== shards) {
      process.stderr.write(
        `stream ${name} exists with ${summary.OpenShardCount} open shards (wanted ${shards}); leaving it as it is\n`,
      )
    }
    return true
  })
}

function positiveInt(what, value) {
  if (!/^[1-9]\d*$/.test(value || '')) throw new Error(`${what} must be a positive integer, got ${JSON.stringify(value)}`)
  return Number(value)
}

async function main(argv) {
  const [command, endpoint, ...rest] = argv
  if (!endpoint) throw new Error('usage: admin.js wait ENDPOINT [TIMEOUT] | ensure-stream ENDPOINT NAME SHARDS [TIMEOUT]')
  switch (command) {
    case 'wait':
      return waitReady(endpoint, rest[0] ? positiveInt('TIMEOUT_SECONDS', rest[0]) : 30)
    case 'ensure-stream': {
      const [name, shards, timeout] = rest
      if (!name) throw new Error('ensure-stream needs a stream NAME')
      return ensureStream(endpoint, name, positiveInt('SHARDS', shards), timeout ? positiveInt('TIMEOUT_SECONDS', timeout) : 30)
    }
    default:
      throw new Error(`unknown command ${JSON.stringify(command)}: want wait or ensure-stream`)
  }
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`admin.js: ${err.message}\n`)
  process.exit(1)
})
