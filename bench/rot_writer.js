// Writer app of bench/rotation.sh: sequence-numbered log lines at a fixed rate.
//
// Under PM2 (fork mode), it writes ROT_LINES lines to stdout at ROT_RATE lines/s, in one
// write() per 10 ms tick (50 lines at 5,000/s), then writes ROT_DONE (a JSON file: lines,
// start and end times) and stays idle, so PM2 neither restarts it nor closes its files.
//
//   node bench/rot_writer.js --generate BYTES FILE
//
// writes the same kind of lines (timestamps 0.2 ms apart) to FILE until it holds at
// least BYTES bytes, for the compression measurement.
//
// Every line is `seq=NNNNNNN <ISO time> <LEVEL> <request> rid=<16 hex> u=<n>`, about
// 100 bytes; everything after the time is a function of the sequence number.
'use strict';

const fs = require('fs');

const LEVELS = ['INFO', 'INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'];
const PATHS = ['/api/v1/orders/', '/api/v1/users/', '/api/v1/search?q=', '/health/', '/static/app.js?v='];
const STATUS = [200, 200, 200, 200, 201, 204, 304, 400, 404, 500];

// murmur3's 32-bit finalizer: deterministic, cheap, well spread.
function mix(x) {
  x = (x + 0x9e3779b9) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

function line(seq, ms) {
  const a = mix(seq);
  const b = mix(a);
  const c = mix(b);
  const rid = a.toString(16).padStart(8, '0') + c.toString(16).padStart(8, '0');
  return 'seq=' + String(seq).padStart(7, '0') + ' ' + new Date(ms).toISOString() + ' ' +
    LEVELS[a % LEVELS.length] + ' ' + METHODS[b % METHODS.length] + ' ' +
    PATHS[c % PATHS.length] + (b % 100000) + ' ' + STATUS[(a >>> 8) % STATUS.length] + ' ' +
    (c % 2000) + 'ms rid=' + rid + ' u=' + (a % 10000) + '\n';
}

function generate(bytes, file) {
  const fd = fs.openSync(file, 'w');
  const t0 = Date.UTC(2026, 11, 1, 0, 0, 0);
  let seq = 0;
  let size = 0;
  while (size < bytes) {
    let chunk = '';
    for (let i = 0; i < 10000; i++) {
      seq++;
      chunk += line(seq, t0 + seq / 5);
    }
    size += fs.writeSync(fd, chunk);
  }
  fs.closeSync(fd);
  process.stdout.write(JSON.stringify({ lines: seq, bytes: size }) + '\n');
}

function run() {
  const rate = Number(process.env.ROT_RATE || 5000);
  const total = Number(process.env.ROT_LINES || 150000);
  const done = process.env.ROT_DONE || '';
  const started = Date.now();
  let written = 0;
  const timer = setInterval(() => {
    const now = Date.now();
    const due = Math.min(total, Math.floor(((now - started) * rate) / 1000));
    if (due > written) {
      let chunk = '';
      while (written < due) {
        written++;
        chunk += line(written, now);
      }
      // A pipe: synchronous on Linux, so this returns once PM2 can read it.
      process.stdout.write(chunk);
    }
    if (written >= total) {
      clearInterval(timer);
      const ended = Date.now();
      if (done) {
        fs.writeFileSync(done + '.tmp', JSON.stringify({ lines: written, rate, started, ended }) + '\n');
        fs.renameSync(done + '.tmp', done);
      }
      // Stay up, idle: an exit would make PM2 close (and, by default, restart) the app.
      setInterval(() => {}, 3600 * 1000);
    }
  }, 10);
}

if (process.argv[2] === '--generate') {
  generate(Number(process.argv[3]), process.argv[4]);
} else {
  run();
}
