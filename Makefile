# Build, test, and run logagg with the duck demo under PM2 (docs/RUNNING.md).
# The pm2-* targets are the npm scripts of package.json; both read ecosystem.config.js.

# The binary PM2 runs. Relative paths are taken from the repository root.
LOGAGG_BIN ?= target/release/logagg
export LOGAGG_BIN
NPM ?= npm

.PHONY: build test pm2-start pm2-start-prod pm2-stop pm2-restart pm2-status pm2-logs

build:
	cargo build --release

# The test command of README.md and .ci/run.
test:
	cargo test --all-targets

# Order-only prerequisites: built or installed when missing, never rebuilt behind
# your back (`make build` after a change).
pm2-start: | node_modules/.bin/pm2 $(LOGAGG_BIN)
	$(NPM) run start:all

pm2-start-prod: | node_modules/.bin/pm2 $(LOGAGG_BIN)
	$(NPM) run start:prod

pm2-stop: | node_modules/.bin/pm2
	$(NPM) run stop:all

pm2-restart: | node_modules/.bin/pm2 $(LOGAGG_BIN)
	$(NPM) run restart:all

pm2-status: | node_modules/.bin/pm2
	$(NPM) run status

pm2-logs: | $(LOGAGG_BIN)
	$(NPM) run --silent logs

node_modules/.bin/pm2:
	$(NPM) ci --no-audit --no-fund

target/release/logagg:
	cargo build --release
