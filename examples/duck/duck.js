#!/usr/bin/env node
// duck: a pretend web service for trying logagg beside PM2. It has no dependencies and
// does no real work; it exists to produce log lines that look like a service's: one
// request line per tick, a warning or an error now and then, its configuration as the
// first line, and a deliberate crash on a schedule so PM2 restarts it and logagg shows
// a restart marker. See README.md in this directory.
'use strict';

const LEVELS = ['debug', 'info', 'warn', 'error'];
const EXIT_CODE = 3;

// Configuration errors exit with 2, which PM2 restarts like any crash; the message
// says what to fix.
function fail(message) {
  console.error(`ERROR duck: ${message}`);
  process.exit(2);
}

function millis(name, fallback, allowZero) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || (n === 0 && !allowZero)) {
    fail(`${name}=${JSON.stringify(raw)} is not a whole number of milliseconds`);
  }
  return n;
}

const level = (process.env.DUCK_LOG_LEVEL || 'info').toLowerCase();
if (!LEVELS.includes(level)) {
  fail(`DUCK_LOG_LEVEL=${JSON.stringify(level)} is not one of ${LEVELS.join(', ')}`);
}
const intervalMs = millis('DUCK_INTERVAL_MS', 1000, false);
// 0: never exit on purpose.
const exitAfterMs = millis('DUCK_EXIT_AFTER_MS', 60000, true);
const envName = process.env.NODE_ENV || 'development';

// Always printed, whatever the level: the one line that tells which values won.
console.log(
  `duck starting: level=${level} interval_ms=${intervalMs} ` +
    `exit_after_ms=${exitAfterMs} env=${envName}`,
);

function log(lineLevel, text) {
  if (LEVELS.indexOf(lineLevel) < LEVELS.indexOf(level)) return;
  const line = `${lineLevel.toUpperCase()} ${text}`;
  if (lineLevel === 'error') console.error(line);
  else console.log(line);
}

// A small linear congruential generator, seeded by the pid, so each run differs but
// nothing needs a dependency. Its low bits repeat quickly, so the high ones are used.
let seed = process.pid >>> 0;
function rand(n) {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return (seed >>> 16) % n;
}

const ROUTES = [
  ['GET', '/ponds'],
  ['GET', '/ponds/:id/ducks'],
  ['POST', '/ponds/:id/bread'],
  ['GET', '/ducks/:id'],
  ['PUT', '/ducks/:id/mood'],
];
let requests = 0;
let ducks = 40 + rand(20);

function tick() {
  requests += 1;
  const [method, pattern] = ROUTES[rand(ROUTES.length)];
  const route = pattern.replace(':id', String(1 + rand(12)));
  const roll = rand(100);
  if (roll < 5) {
    const ms = 2000 + rand(500);
    log('error', `${method} ${route} 503 in ${ms}ms (request ${requests}): bread service timed out`);
  } else if (roll < 15) {
    const ms = 500 + rand(1500);
    log('warn', `${method} ${route} 200 in ${ms}ms (request ${requests}): slower than the 500ms budget`);
  } else {
    log('info', `${method} ${route} 200 in ${3 + rand(60)}ms (request ${requests})`);
  }
  if (requests % 10 === 0) {
    ducks += rand(5) - 2;
    log('debug', `pond sweep: ${ducks} ducks, ${requests} requests so far, heap ${heapMiB()} MiB`);
  }
}

function heapMiB() {
  return (process.memoryUsage().heapUsed / 1048576).toFixed(1);
}

const ticker = setInterval(tick, intervalMs);

if (exitAfterMs > 0) {
  setTimeout(() => {
    // stderr is a pipe under PM2, and pipes are written synchronously on Linux, so this
    // line is out before the process is.
    console.error(
      `ERROR duck: scheduled exit after ${exitAfterMs}ms and ${requests} requests ` +
        `(exit code ${EXIT_CODE}); PM2 should restart me`,
    );
    process.exit(EXIT_CODE);
  }, exitAfterMs);
}

// PM2 stops an app with SIGINT (then SIGKILL after kill_timeout).
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    clearInterval(ticker);
    log('info', `duck stopping on ${signal} after ${requests} requests`);
    process.exit(0);
  });
}
