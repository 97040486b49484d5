// Latency benchmark app, run under PM2: after LAT_START_DELAY_MS, writes LAT_N lines
// `lat <seq> <wall-clock ns when written>` to stdout, one every LAT_INTERVAL_MS, then idles
// so PM2 does not restart it.
const n = Number(process.env.LAT_N || 2000);
const every = Number(process.env.LAT_INTERVAL_MS || 5);
const delay = Number(process.env.LAT_START_DELAY_MS || 3000);
const wallNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e3)) * 1000n;
let seq = 0;
setTimeout(() => {
  const timer = setInterval(() => {
    console.log(`lat ${seq} ${wallNs()}`);
    seq += 1;
    if (seq >= n) clearInterval(timer);
  }, every);
}, delay);
setInterval(() => {}, 1 << 30);
