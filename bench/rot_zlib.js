// Compression helper of bench/rotation.sh: compresses one file the way pm2-logrotate
// 3.0.0 compresses an archive (app.js `proceed`): a read stream piped through
// zlib.createGzip({ level: Z_BEST_COMPRESSION, memLevel: Z_BEST_COMPRESSION }) into a
// write stream (no fsync).
//
//   node bench/rot_zlib.js SRC DEST
'use strict';

const fs = require('fs');
const zlib = require('zlib');

const [src, dest] = process.argv.slice(2);
if (!src || !dest) {
  console.error('usage: node rot_zlib.js SRC DEST');
  process.exit(2);
}
const started = process.hrtime.bigint();
const gzip = zlib.createGzip({ level: zlib.Z_BEST_COMPRESSION, memLevel: zlib.Z_BEST_COMPRESSION });
const out = fs.createWriteStream(dest, { flags: 'w+' });
fs.createReadStream(src).pipe(gzip).pipe(out);
out.on('finish', () => {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const bytesIn = fs.statSync(src).size;
  const bytesOut = fs.statSync(dest).size;
  process.stdout.write(JSON.stringify({ bytes_in: bytesIn, bytes_out: bytesOut, seconds }) + '\n');
});
