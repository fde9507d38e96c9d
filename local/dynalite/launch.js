// Started by local/dynalite (node -e): dynalite in memory on 127.0.0.1, a
// port the kernel picks, announced on stdout as one JSON line. Tables are
// ACTIVE at once (no 500 ms CREATING). The process ends when its stdin
// closes, i.e. when the Go parent closes it or dies.
const path = require('path')
const dynalite = require(path.join(process.argv[1], 'dynalite'))
const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
