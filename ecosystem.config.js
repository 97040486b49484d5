// Every service of this project under stock PM2: logagg itself and the duck demo.
//
//   npm run start:all      pm2 start ecosystem.config.js                    (env)
//   npm run start:prod     pm2 start ecosystem.config.js --env production   (env + env_production)
//   npm run stop:all       pm2 stop ecosystem.config.js
//   npm run logs           logagg tail: every service, merged, followed
//
// How a variable reaches a service. PM2 gives each app the environment of the shell
// that ran `pm2 start`, then lays the app's `env` block over it, then (with
// `--env production`) its `env_production` block. A block's value beats the shell's
// variable of the same name, so every value below is written `fromShell(NAME, default)`:
// what the caller exported wins, the default applies otherwise. `NODE_ENV` is the one
// exception: it always follows `--env`. Checked against PM2 7.0.4 (docs/MIGRATION_PLAN.md).
//
// Overrides read from the caller's environment, besides the services' own variables:
//   LOGAGG_KIT_ROOT    where logs/ lives (default: this directory); tests use a temp dir
//   LOGAGG_BIN         the logagg binary (default: target/release/logagg; `make build`)
//   LOGAGG_API_LISTEN  logagg's HTTP API (default 127.0.0.1:9171); also read by `npm run logs`
'use strict';

const fs = require('fs');
const path = require('path');

const shell = process.env;
function fromShell(name, fallback) {
  const value = shell[name];
  return value === undefined || value === '' ? fallback : value;
}

const ROOT = path.resolve(fromShell('LOGAGG_KIT_ROOT', __dirname));
const LOGS = path.join(ROOT, 'logs', 'pm2');
const BIN = path.resolve(__dirname, fromShell('LOGAGG_BIN', 'target/release/logagg'));
const LISTEN = fromShell('LOGAGG_API_LISTEN', '127.0.0.1:9171');

// PM2 writes into the log directory but only warns when it is missing.
fs.mkdirSync(LOGS, { recursive: true });

// The same log layout for every app: logs/pm2/<name>-out.log and <name>-error.log,
// each line prefixed with its time, which is what logagg follows and rotates.
function logs(name) {
  return {
    out_file: path.join(LOGS, `${name}-out.log`),
    error_file: path.join(LOGS, `${name}-error.log`),
    time: true,
  };
}

module.exports = {
  apps: [
    {
      name: 'logagg',
      script: BIN,
      args: 'daemon',
      interpreter: 'none', // a native binary, not a Node.js script
      cwd: ROOT,
      ...logs('logagg'),
      autorestart: true,
      // A daemon that dies within 10 s of its start counts as an unstable start; after
      // 10 of those in a row PM2 gives up (status "errored") instead of spinning.
      min_uptime: '10s',
      max_restarts: 10,
      restart_delay: 1000,
      // logagg commits and exits within 2 s of SIGINT; PM2's default of 1.6 s before
      // SIGKILL would cut the final commit short (the next start resumes from the last
      // commit, so nothing is lost, but the shutdown is no longer clean).
      kill_timeout: 5000,
      env: {
        NODE_ENV: 'development',
        // The repository's config file is the base layer wherever ROOT points;
        // LOGAGG_<SECTION>_<KEY> variables override it, key by key.
        LOGAGG_CONFIG: fromShell('LOGAGG_CONFIG', path.join(__dirname, 'config', 'logagg.toml')),
        LOGAGG_DATA_DIR: fromShell('LOGAGG_DATA_DIR', path.join(ROOT, 'logs', 'logagg')),
        // A list: comma-separated globs.
        LOGAGG_SOURCES_PATHS: fromShell('LOGAGG_SOURCES_PATHS', path.join(LOGS, '*.log')),
        LOGAGG_ROTATION_ARCHIVE_DIR: fromShell(
          'LOGAGG_ROTATION_ARCHIVE_DIR',
          path.join(LOGS, 'archive'),
        ),
        LOGAGG_API_LISTEN: LISTEN,
        LOGAGG_INDEX_COMMIT_INTERVAL: fromShell('LOGAGG_INDEX_COMMIT_INTERVAL', '1s'),
        // The daemon's own log (its stderr, so logs/pm2/logagg-error.log).
        LOGAGG_LOG: fromShell('LOGAGG_LOG', 'info,tantivy=warn'),
      },
      env_production: {
        NODE_ENV: 'production',
        LOGAGG_INDEX_RETENTION: fromShell('LOGAGG_INDEX_RETENTION', '90d'),
        LOGAGG_ROTATION_MAX_SIZE: fromShell('LOGAGG_ROTATION_MAX_SIZE', '50MiB'),
        LOGAGG_ROTATION_RETAIN: fromShell('LOGAGG_ROTATION_RETAIN', '60'),
        LOGAGG_LOG: fromShell('LOGAGG_LOG', 'warn'),
      },
    },
    {
      name: 'duck',
      script: path.join(__dirname, 'examples', 'duck', 'duck.js'),
      cwd: path.join(__dirname, 'examples', 'duck'),
      ...logs('duck'),
      autorestart: true,
      // duck exits with code 3 on purpose every DUCK_EXIT_AFTER_MS; a run longer than
      // min_uptime is a stable one, so those planned exits never exhaust max_restarts.
      min_uptime: '1s',
      max_restarts: 10,
      kill_timeout: 3000,
      env: {
        NODE_ENV: 'development',
        DUCK_LOG_LEVEL: fromShell('DUCK_LOG_LEVEL', 'debug'),
        DUCK_INTERVAL_MS: fromShell('DUCK_INTERVAL_MS', '1000'),
        DUCK_EXIT_AFTER_MS: fromShell('DUCK_EXIT_AFTER_MS', '60000'),
      },
      env_production: {
        NODE_ENV: 'production',
        DUCK_LOG_LEVEL: fromShell('DUCK_LOG_LEVEL', 'info'),
        DUCK_INTERVAL_MS: fromShell('DUCK_INTERVAL_MS', '5000'),
        DUCK_EXIT_AFTER_MS: fromShell('DUCK_EXIT_AFTER_MS', '3600000'),
      },
    },

    // The next agent: copy this block above, uncomment it, and fill it in. Its logs
    // land in logs/pm2/ like the others', so logagg follows, rotates and indexes them
    // with no change to logagg's configuration. Then `npm run start:all` (a running
    // PM2 starts only the new app) and `logagg tail --service my-agent`.
    //
    // {
    //   name: 'my-agent',                    // letters, digits, '.', '-' keep file names plain
    //   script: path.join(__dirname, 'agents', 'my-agent', 'index.js'),
    //   // interpreter: 'none',              // for a binary or a script with a shebang
    //   cwd: path.join(__dirname, 'agents', 'my-agent'),
    //   ...logs('my-agent'),
    //   autorestart: true,
    //   min_uptime: '5s',                    // shorter runs count as unstable starts
    //   max_restarts: 10,                    // unstable starts in a row before "errored"
    //   kill_timeout: 5000,                  // SIGINT, then SIGKILL after this many ms
    //   env: {
    //     NODE_ENV: 'development',
    //     MY_AGENT_LOG_LEVEL: fromShell('MY_AGENT_LOG_LEVEL', 'debug'),
    //   },
    //   env_production: {
    //     NODE_ENV: 'production',
    //     MY_AGENT_LOG_LEVEL: fromShell('MY_AGENT_LOG_LEVEL', 'info'),
    //   },
    // },
  ],
};
