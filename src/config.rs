//! The resolved configuration: built-in defaults < the config file < `LOGAGG_*`
//! environment variables < command-line flags, validated so that every mistake is
//! reported with where it was made (file:line:column and dotted key, or variable name).
//!
//! Each key is described once, in [`TOP_KEYS`], [`SECTIONS`] or [`ROTATION_KEYS`]: its
//! name, its one-line help, how a value is checked and stored, and how it is written back.
//! The file walker, the environment, `to_toml` and the unknown-key messages all read those
//! tables, so adding a key means one struct field, one default and one descriptor.
//!
//! The rotation keys describe a [`RotationPolicy`] rather than the whole `Config`, because
//! they are read twice: under `[rotation]` (a section like the others, see
//! [`rotation_key`]) and under each `[services.NAME]`. A service's policy is `[rotation]`
//! once every layer is in (file, environment, flags), with that service's keys on top;
//! so its tables are checked when the file is read but applied at the end of
//! [`Config::load`]. Services have no environment variables.
//!
//! `pm2.home` is resolved last too: an empty value means PM2's own rule, `$PM2_HOME`, else
//! `$HOME/.pm2`, read through the same lookup as the `LOGAGG_*` variables.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml_edit::{Document, Item, Key, Value};

use crate::units::{format_duration, format_size, parse_duration, parse_size};

/// Where the config file is looked for when neither `--config` nor `LOGAGG_CONFIG` names one.
pub const DEFAULT_FILE: &str = "config/logagg.toml";

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "LOGAGG_CONFIG";

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// What the daemon runs on, after all sources of settings have been merged.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Index and state; absolute.
    pub data_dir: PathBuf,
    pub sources: SourcesConfig,
    pub index: IndexConfig,
    pub api: ApiConfig,
    pub pm2: Pm2Config,
    /// `[rotation]`: the policy of every live file whose service has no `[services.NAME]`.
    pub rotation: RotationPolicy,
    /// `[services.NAME]`: `rotation` with that table's keys on top. See [`Config::policy_for`].
    pub services: BTreeMap<String, RotationPolicy>,
    /// the file that was read, if any
    pub file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourcesConfig {
    /// Absolute glob patterns of the log files to follow.
    pub paths: Vec<String>,
    /// Longer lines are split and flagged, so one runaway line cannot grow memory.
    pub max_line_bytes: u64,
    /// Fallback rescan of the globs, for file events that were missed.
    pub rescan_interval: Duration,
    /// How long a renamed-away or deleted file is still read after it last grew.
    pub linger: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexConfig {
    pub commit_interval: Duration,
    pub retention: Duration,
    pub writer_memory: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiConfig {
    /// A socket address, `host:port`, with `localhost` already turned into 127.0.0.1.
    pub listen: String,
    /// The bearer token every route but `/healthz` asks for; required off loopback.
    pub token: Option<String>,
    /// Records kept for live followers; one that falls further behind is told how many
    /// it missed.
    pub live_buffer: u32,
    /// How often an idle live follow gets a keep-alive comment.
    pub heartbeat: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pm2Config {
    /// PM2's home (`pub.sock`, `rpc.sock`, `logs/`); absolute. The `pm2.home` key, else
    /// `$PM2_HOME`, else `$HOME/.pm2`, else `/etc/.pm2` (PM2's own fallback).
    pub home: PathBuf,
    /// Listen to PM2's event bus (`pub.sock`) and put restart and crash markers in the
    /// timeline.
    pub bus: bool,
}

/// When and how live log files are rotated, and which archives are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct RotationPolicy {
    /// Rotate a live file once it is larger than this.
    pub max_size: Option<u64>,
    /// Rotate a live file once its oldest unrotated line is this old.
    pub max_age: Option<Duration>,
    /// Archives kept per live file, newest first; 0 = no limit by count.
    pub retain: u32,
    /// Archives older than this are deleted.
    pub max_archive_age: Option<Duration>,
    /// Oldest archives of one live file are deleted while together they exceed this.
    pub max_total_size: Option<u64>,
    /// gzip the archives.
    pub compress: bool,
    /// gzip level, 0..=9.
    pub compress_level: u32,
    /// Where archives are written; absolute.
    pub archive_dir: PathBuf,
    pub method: RotationMethod,
}

/// How a live file is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationMethod {
    /// The best one that works: reload, else collapse, else copytruncate.
    Auto,
    /// Rename the file, then ask PM2 to reopen its files (`reloadLogs`).
    Reload,
    /// Cut the read part off the front of the file in place
    /// (`fallocate(FALLOC_FL_COLLAPSE_RANGE)`).
    Collapse,
    /// Copy the file, then truncate it; lines written in between are lost.
    CopyTruncate,
}

impl RotationMethod {
    pub const ALL: [RotationMethod; 4] = [
        RotationMethod::Auto,
        RotationMethod::Reload,
        RotationMethod::Collapse,
        RotationMethod::CopyTruncate,
    ];

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            RotationMethod::Auto => "auto",
            RotationMethod::Reload => "reload",
            RotationMethod::Collapse => "collapse",
            RotationMethod::CopyTruncate => "copytruncate",
        }
    }
}

impl fmt::Display for RotationMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings given as command-line flags: the last word over everything else.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    /// Replaces `sources.paths` when not empty.
    pub paths: Vec<String>,
    pub listen: Option<String>,
}

/// Why no configuration could be resolved. Display is one line, naming the file and
/// position, the environment variable or the flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {}: {}", path.display(), io_reason(error))]
    Read { path: PathBuf, error: io::Error },
    #[error("{}:{line}:{column}: syntax error: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// `what` is "key" or "table"; `known` lists what would have been accepted there.
    #[error("{}:{line}:{column}: unknown {what} \"{key}\" ({known})", file.display())]
    Unknown {
        file: PathBuf,
        line: usize,
        column: usize,
        what: &'static str,
        key: String,
        known: String,
    },
    /// A known key with a value of the wrong type or out of range.
    #[error("{}:{line}:{column}: key \"{key}\": {message}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("environment variable {var}: unknown key \"{key}\" ({known})")]
    UnknownEnv {
        var: String,
        key: String,
        known: String,
    },
    #[error("flag {flag}: {message}")]
    Flag { flag: &'static str, message: String },
}

/// The OS reason without Rust's " (os error 2)" suffix, which says nothing to a user.
fn io_reason(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl Config {
    /// The built-in defaults, with relative paths resolved against `cwd`. `pm2.home` is
    /// what an empty environment gives (`/etc/.pm2`); [`Config::load`] reads `PM2_HOME`
    /// and `HOME`.
    pub fn defaults(cwd: &Path) -> Config {
        Config {
            data_dir: resolve_path(cwd, Path::new("logs/logagg")),
            sources: SourcesConfig {
                paths: vec![resolve_glob(cwd, "logs/pm2/*.log")],
                max_line_bytes: MIB,
                rescan_interval: Duration::from_secs(5),
                linger: Duration::from_secs(2),
            },
            index: IndexConfig {
                commit_interval: Duration::from_secs(1),
                retention: Duration::from_secs(30 * 86_400),
                writer_memory: 64 * MIB,
            },
            api: ApiConfig {
                listen: "127.0.0.1:9171".to_string(),
                token: None,
                live_buffer: 16_384,
                heartbeat: Duration::from_secs(15),
            },
            pm2: Pm2Config {
                home: pm2_home_from_env(&|_| None, cwd),
                bus: true,
            },
            rotation: RotationPolicy {
                max_size: Some(10 * MIB),
                max_age: Some(Duration::from_secs(86_400)),
                retain: 30,
                max_archive_age: Some(Duration::from_secs(30 * 86_400)),
                max_total_size: None,
                compress: true,
                compress_level: 6,
                archive_dir: resolve_path(cwd, Path::new("logs/pm2/archive")),
                method: RotationMethod::Auto,
            },
            services: BTreeMap::new(),
            file: None,
        }
    }

    /// The policy of `service`'s live files: its `[services.NAME]`, else `[rotation]`.
    pub fn policy_for(&self, service: &str) -> &RotationPolicy {
        self.services.get(service).unwrap_or(&self.rotation)
    }

    /// Resolves the configuration: defaults, then the file (`flags.config`, else
    /// `LOGAGG_CONFIG`, else `config/logagg.toml` under `cwd` if it exists), then the
    /// `LOGAGG_<SECTION>_<KEY>` variables found through `env`, then `flags`. Then, with
    /// every layer in, `pm2.home` if empty (`PM2_HOME`, `HOME` through `env`) and the
    /// `[services.NAME]` policies (the final `[rotation]` with their keys on top).
    ///
    /// env is a lookup function so tests need not touch the process environment. A
    /// lookup cannot list names, so misspelt variables are caught by
    /// [`Config::check_env_names`] (done for you by [`Config::from_process_env`]).
    pub fn load(
        flags: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::defaults(cwd);
        // Empty until every layer is in: only then is it known whether the key was given.
        config.pm2.home = PathBuf::new();

        let named = flags
            .config
            .clone()
            .or_else(|| non_empty(env(CONFIG_ENV)).map(PathBuf::from));
        let (shown, explicit) = match named {
            Some(path) => (path, true),
            None => (PathBuf::from(DEFAULT_FILE), false),
        };
        let path = resolve_path(cwd, &shown);
        let mut services = Vec::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                services = apply_file(&mut config, &text, &shown, cwd)?;
                config.file = Some(path);
            }
            // Without a config file the defaults apply; only a file asked for must exist.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !explicit => {}
            Err(error) => return Err(ConfigError::Read { path: shown, error }),
        }

        apply_env(&mut config, env, cwd)?;
        apply_flags(&mut config, flags, cwd)?;
        if config.pm2.home.as_os_str().is_empty() {
            config.pm2.home = pm2_home_from_env(env, cwd);
        }
        for table in &services {
            let mut policy = config.rotation.clone();
            table.apply(&mut policy, cwd)?;
            config.services.insert(table.name.clone(), policy);
        }
        Ok(config)
    }

    /// [`Config::load`] with the process environment, after checking it for
    /// `LOGAGG_<SECTION>_<KEY>` variables whose key does not exist.
    pub fn from_process_env(flags: &Overrides, cwd: &Path) -> Result<Config, ConfigError> {
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect();
        Config::check_env_names(names.iter().map(String::as_str))?;
        Config::load(flags, &|name| std::env::var(name).ok(), cwd)
    }

    /// Refuses a variable that names a known section but an unknown key
    /// (`LOGAGG_INDEX_COMIT_INTERVAL`): it was surely meant for us and would otherwise be
    /// silently ignored. So is `LOGAGG_SERVICES_*`: `[services.NAME]` exists only in the
    /// file. Other `LOGAGG_*` names (`LOGAGG_TOKEN`, ...) belong to other parts of the
    /// program and pass.
    pub fn check_env_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ConfigError> {
        for name in names {
            let Some(rest) = name.strip_prefix("LOGAGG_") else {
                continue;
            };
            if rest == "SERVICES" || rest.starts_with("SERVICES_") {
                return Err(ConfigError::Env {
                    var: name.to_string(),
                    message: "unknown variable: [services.NAME] keys can only be set in the \
                              config file, not from the environment"
                        .to_string(),
                });
            }
            for section in SECTIONS {
                let prefix = format!("{}_", section.name.to_ascii_uppercase());
                let Some(key) = rest.strip_prefix(&prefix) else {
                    continue;
                };
                if !section
                    .keys
                    .iter()
                    .any(|k| k.name.eq_ignore_ascii_case(key))
                {
                    return Err(ConfigError::UnknownEnv {
                        var: name.to_string(),
                        key: format!("{}.{}", section.name, key.to_ascii_lowercase()),
                        known: format!(
                            "known variables: {}",
                            section
                                .keys
                                .iter()
                                .map(|k| env_name(Some(section.name), k.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// the resolved configuration as TOML, every key (what `logagg config check` prints);
    /// each `[services.NAME]` table lists only the keys where it differs from `[rotation]`
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# logagg configuration as resolved: built-in defaults < config file\n\
             # < LOGAGG_<SECTION>_<KEY> environment variables < command-line flags.\n",
        );
        match &self.file {
            Some(path) => out.push_str(&format!("# Read from {}\n", path.display())),
            None => out.push_str("# No config file was read.\n"),
        }
        out.push('\n');
        write_keys(&mut out, self, TOP_KEYS);
        for section in SECTIONS {
            out.push_str(&format!("\n[{}]\n", section.name));
            write_keys(&mut out, self, section.keys);
        }
        if !self.services.is_empty() {
            out.push_str(
                "\n# [services.NAME]: only the keys where the service differs from [rotation].\n",
            );
        }
        for (i, (name, policy)) in self.services.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!(
                "[{SERVICES}.{}]\n",
                Key::new(name.as_str()).display_repr()
            ));
            let differ = ROTATION_KEYS
                .iter()
                .filter(|k| (k.get)(policy).to_string() != (k.get)(&self.rotation).to_string());
            write_keys(&mut out, policy, differ);
        }
        out
    }
}

/// `key = value  # help` lines, the comments aligned within the group.
fn write_keys<'a, T: 'static>(
    out: &mut String,
    target: &T,
    keys: impl IntoIterator<Item = &'a KeySpec<T>>,
) {
    let lines: Vec<(String, &str)> = keys
        .into_iter()
        .map(|k| (format!("{} = {}", k.name, (k.get)(target)), k.help))
        .collect();
    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (line, help) in lines {
        out.push_str(&format!("{line:width$}  # {help}\n"));
    }
}

// ---------------------------------------------------------------------------------------
// Key descriptors

/// A value as it arrived: typed and positioned from the file, or text from the environment.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Toml(&'a Item),
    Text(&'a str),
}

/// Why a value cannot be used. `span` points inside the value (an array element) when
/// that is more precise than the whole value.
struct Problem {
    message: String,
    span: Option<Range<usize>>,
}

impl From<String> for Problem {
    fn from(message: String) -> Problem {
        Problem {
            message,
            span: None,
        }
    }
}

/// One configuration key of a `T`: the [`Config`], or a [`RotationPolicy`] for
/// [`ROTATION_KEYS`].
struct KeySpec<T: 'static = Config> {
    name: &'static str,
    /// One line, shown as a comment by `to_toml`.
    help: &'static str,
    /// Checks a value and stores it; relative paths resolve against the given cwd.
    set: fn(&mut T, Raw<'_>, &Path) -> Result<(), Problem>,
    /// The value as written in TOML.
    get: fn(&T) -> Value,
}

struct SectionSpec {
    name: &'static str,
    keys: &'static [KeySpec],
}

/// Keys outside any section.
const TOP_KEYS: &[KeySpec] = &[KeySpec {
    name: "data_dir",
    help: "index and state",
    set: |c, raw, cwd| {
        let dir = string(raw, "\"logs/logagg\"")?;
        c.data_dir = resolve_path(cwd, Path::new(not_empty(dir)?));
        Ok(())
    },
    get: |c| Value::from(c.data_dir.to_string_lossy().as_ref()),
}];

const SECTIONS: &[SectionSpec] = &[
    SectionSpec {
        name: "sources",
        keys: &[
            KeySpec {
                name: "paths",
                help: "globs of the log files to follow",
                set: |c, raw, cwd| {
                    c.sources.paths = match raw {
                        Raw::Toml(item) => resolve_globs(&string_array(item)?, cwd)?,
                        // The environment has no arrays: a comma-separated list instead.
                        Raw::Text(text) => {
                            let list: Vec<String> = text
                                .split(',')
                                .map(str::trim)
                                .filter(|p| !p.is_empty())
                                .map(String::from)
                                .collect();
                            resolve_globs(&list, cwd)?
                        }
                    };
                    Ok(())
                },
                get: |c| Value::Array(c.sources.paths.iter().map(String::as_str).collect()),
            },
            KeySpec {
                name: "max_line_bytes",
                help: "longer lines are split and flagged",
                set: |c, raw, _| {
                    c.sources.max_line_bytes = at_least(size(raw)?, KIB, "")?;
                    Ok(())
                },
                get: |c| Value::from(format_size(c.sources.max_line_bytes)),
            },
            KeySpec {
                name: "rescan_interval",
                help: "fallback rescan of the globs, for missed file events",
                set: |c, raw, _| {
                    // Zero would make the rescan a busy loop (and tokio refuses it).
                    c.sources.rescan_interval = positive(duration(raw)?)?;
                    Ok(())
                },
                get: |c| Value::from(format_duration(c.sources.rescan_interval)),
            },
            KeySpec {
                name: "linger",
                help: "how long a renamed-away or deleted file is still read after it last grew",
                set: |c, raw, _| {
                    c.sources.linger = duration(raw)?;
                    Ok(())
                },
                get: |c| Value::from(format_duration(c.sources.linger)),
            },
        ],
    },
    SectionSpec {
        name: "index",
        keys: &[
            KeySpec {
                name: "commit_interval",
                help: "how often new lines become searchable",
                set: |c, raw, _| {
                    c.index.commit_interval = positive(duration(raw)?)?;
                    Ok(())
                },
                get: |c| Value::from(format_duration(c.index.commit_interval)),
            },
            KeySpec {
                name: "retention",
                help: "indexed lines older than this are deleted",
                set: |c, raw, _| {
                    c.index.retention = duration(raw)?;
                    Ok(())
                },
                get: |c| Value::from(format_duration(c.index.retention)),
            },
            KeySpec {
                name: "writer_memory",
                help: "memory budget of the index writer",
                set: |c, raw, _| {
                    c.index.writer_memory = at_least(
                        size(raw)?,
                        15 * MIB,
                        " (tantivy needs at least 15MB per indexing thread)",
                    )?;
                    Ok(())
                },
                get: |c| Value::from(format_size(c.index.writer_memory)),
            },
        ],
    },
    SectionSpec {
        name: "api",
        keys: &[
            KeySpec {
                name: "listen",
                help: "address of the HTTP API",
                set: |c, raw, _| {
                    c.api.listen = listen_addr(string(raw, "\"127.0.0.1:9171\"")?)?;
                    Ok(())
                },
                get: |c| Value::from(c.api.listen.as_str()),
            },
            KeySpec {
                name: "token",
                help: "bearer token the API asks for (\"\": none; required off loopback)",
                set: |c, raw, _| {
                    let token = string(raw, "\"a-long-random-string\"")?.trim();
                    c.api.token = (!token.is_empty()).then(|| token.to_string());
                    Ok(())
                },
                // A secret is not printed back by `logagg config check`.
                get: |c| Value::from(if c.api.token.is_some() { "<set>" } else { "" }),
            },
            KeySpec {
                name: "live_buffer",
                help: "records kept for live followers (a slower one is told what it missed)",
                set: |c, raw, _| {
                    c.api.live_buffer = not_zero(count(raw)?)?;
                    Ok(())
                },
                get: |c| Value::from(i64::from(c.api.live_buffer)),
            },
            KeySpec {
                name: "heartbeat",
                help: "keep-alive interval of idle live follows",
                set: |c, raw, _| {
                    c.api.heartbeat = positive(duration(raw)?)?;
                    Ok(())
                },
                get: |c| Value::from(format_duration(c.api.heartbeat)),
            },
        ],
    },
    SectionSpec {
        name: "pm2",
        keys: &[
            KeySpec {
                name: "home",
                help: "PM2's home directory (empty: $PM2_HOME, else $HOME/.pm2)",
                set: |c, raw, cwd| {
                    let home = string(raw, "\"/home/app/.pm2\"")?;
                    // Empty is resolved at the end of `Config::load`, from the environment.
                    c.pm2.home = match home.trim().is_empty() {
                        true => PathBuf::new(),
                        false => resolve_path(cwd, Path::new(home)),
                    };
                    Ok(())
                },
                get: |c| Value::from(c.pm2.home.to_string_lossy().as_ref()),
            },
            KeySpec {
                name: "bus",
                help: "put PM2's restart, crash and stop events in the timeline (from pub.sock)",
                set: |c, raw, _| {
                    c.pm2.bus = boolean(raw)?;
                    Ok(())
                },
                get: |c| Value::from(c.pm2.bus),
            },
        ],
    },
    SectionSpec {
        name: "rotation",
        keys: ROTATION_SECTION,
    },
];

/// The table of per-service rotation policies, `[services.NAME]`; not in the environment.
const SERVICES: &str = "services";

/// The keys of a [`RotationPolicy`]: `[rotation]` and every `[services.NAME]`.
const ROTATION_KEYS: &[KeySpec<RotationPolicy>] = &[
    KeySpec {
        name: "max_size",
        help: "rotate a live file when it grows past this (\"\" disables)",
        set: |p, raw, _| {
            p.max_size = optional(raw, |raw| not_zero(size(raw)?))?;
            Ok(())
        },
        get: |p| optional_value(p.max_size.map(format_size)),
    },
    KeySpec {
        name: "max_age",
        help: "... or when its oldest unrotated line is this old (\"\" disables)",
        set: |p, raw, _| {
            p.max_age = optional(raw, |raw| not_zero(duration(raw)?))?;
            Ok(())
        },
        get: |p| optional_value(p.max_age.map(format_duration)),
    },
    KeySpec {
        name: "retain",
        help: "archives kept per live file (0: no limit by count)",
        set: |p, raw, _| {
            p.retain = count(raw)?;
            Ok(())
        },
        get: |p| Value::from(i64::from(p.retain)),
    },
    KeySpec {
        name: "max_archive_age",
        help: "archives older than this are deleted (\"\": no limit)",
        set: |p, raw, _| {
            p.max_archive_age = optional(raw, |raw| not_zero(duration(raw)?))?;
            Ok(())
        },
        get: |p| optional_value(p.max_archive_age.map(format_duration)),
    },
    KeySpec {
        name: "max_total_size",
        help: "the archives of one live file together (\"\": no limit)",
        set: |p, raw, _| {
            p.max_total_size = optional(raw, |raw| not_zero(size(raw)?))?;
            Ok(())
        },
        get: |p| optional_value(p.max_total_size.map(format_size)),
    },
    KeySpec {
        name: "compress",
        help: "gzip the archives",
        set: |p, raw, _| {
            p.compress = boolean(raw)?;
            Ok(())
        },
        get: |p| Value::from(p.compress),
    },
    KeySpec {
        name: "compress_level",
        help: "gzip level, 0 (fastest) to 9 (smallest)",
        set: |p, raw, _| {
            p.compress_level = gzip_level(raw)?;
            Ok(())
        },
        get: |p| Value::from(i64::from(p.compress_level)),
    },
    KeySpec {
        name: "archive_dir",
        help: "where archives are written",
        set: |p, raw, cwd| {
            let dir = string(raw, "\"logs/pm2/archive\"")?;
            p.archive_dir = resolve_path(cwd, Path::new(not_empty(dir)?));
            Ok(())
        },
        get: |p| Value::from(p.archive_dir.to_string_lossy().as_ref()),
    },
    KeySpec {
        name: "method",
        help: "auto | reload | collapse | copytruncate",
        set: |p, raw, _| {
            p.method = rotation_method(string(raw, "\"auto\"")?)?;
            Ok(())
        },
        get: |p| Value::from(p.method.as_str()),
    },
];

/// Key `I` of [`ROTATION_KEYS`] as a key of `Config`, stored in `Config::rotation`.
const fn rotation_key<const I: usize>() -> KeySpec {
    KeySpec {
        name: ROTATION_KEYS[I].name,
        help: ROTATION_KEYS[I].help,
        set: |c, raw, cwd| (ROTATION_KEYS[I].set)(&mut c.rotation, raw, cwd),
        get: |c| (ROTATION_KEYS[I].get)(&c.rotation),
    }
}

/// `[rotation]`: every key of [`ROTATION_KEYS`], in order, on `Config::rotation`.
const ROTATION_SECTION: &[KeySpec] = &[
    rotation_key::<0>(),
    rotation_key::<1>(),
    rotation_key::<2>(),
    rotation_key::<3>(),
    rotation_key::<4>(),
    rotation_key::<5>(),
    rotation_key::<6>(),
    rotation_key::<7>(),
    rotation_key::<8>(),
];
const _: () = assert!(
    ROTATION_SECTION.len() == ROTATION_KEYS.len(),
    "ROTATION_SECTION must list every key of ROTATION_KEYS"
);

fn env_name(section: Option<&str>, key: &str) -> String {
    match section {
        Some(section) => format!("LOGAGG_{section}_{key}"),
        None => format!("LOGAGG_{key}"),
    }
    .to_ascii_uppercase()
}

// ---------------------------------------------------------------------------------------
// Value checks shared by the descriptors

fn type_error(item: &Item, expected: &str) -> Problem {
    format!("expected {expected}, found {}", item.type_name()).into()
}

fn string<'a>(raw: Raw<'a>, example: &str) -> Result<&'a str, Problem> {
    match raw {
        Raw::Toml(item) => item
            .as_str()
            .ok_or_else(|| type_error(item, &format!("a string such as {example}"))),
        Raw::Text(text) => Ok(text),
    }
}

fn not_empty(s: &str) -> Result<&str, Problem> {
    if s.trim().is_empty() {
        return Err(String::from("must not be empty").into());
    }
    Ok(s)
}

/// A size: a string with a unit, or (in the file) an integer number of bytes.
fn size(raw: Raw<'_>) -> Result<u64, Problem> {
    if let Raw::Toml(item) = raw {
        if let Some(n) = item.as_integer() {
            return u64::try_from(n).map_err(|_| {
                format!("invalid size {n} (a number of bytes cannot be negative)").into()
            });
        }
    }
    let expected = "a size such as \"1MiB\" or a number of bytes";
    let text = match raw {
        Raw::Toml(item) => item.as_str().ok_or_else(|| type_error(item, expected))?,
        Raw::Text(text) => text,
    };
    Ok(parse_size(text)?)
}

fn duration(raw: Raw<'_>) -> Result<Duration, Problem> {
    Ok(parse_duration(string(raw, "\"5s\"")?)?)
}

fn at_least(bytes: u64, min: u64, why: &str) -> Result<u64, Problem> {
    if bytes < min {
        return Err(format!(
            "{} is below the minimum of {}{why}",
            format_size(bytes),
            format_size(min)
        )
        .into());
    }
    Ok(bytes)
}

fn positive(d: Duration) -> Result<Duration, Problem> {
    if d.is_zero() {
        return Err(String::from("must be greater than 0").into());
    }
    Ok(d)
}

/// A value that an empty string turns off.
fn optional<T>(
    raw: Raw<'_>,
    parse: impl FnOnce(Raw<'_>) -> Result<T, Problem>,
) -> Result<Option<T>, Problem> {
    let empty = match raw {
        Raw::Toml(item) => item.as_str().is_some_and(|s| s.trim().is_empty()),
        Raw::Text(text) => text.trim().is_empty(),
    };
    if empty {
        return Ok(None);
    }
    parse(raw).map(Some)
}

fn optional_value(text: Option<String>) -> Value {
    Value::from(text.unwrap_or_default())
}

/// For the keys that "" turns off: zero would be a second, unclear way to say so.
fn not_zero<T: Default + PartialEq>(value: T) -> Result<T, Problem> {
    if value == T::default() {
        return Err(String::from("must be greater than 0 (\"\" turns it off)").into());
    }
    Ok(value)
}

/// An integer: a TOML integer in the file, its digits in the environment.
fn integer(raw: Raw<'_>, expected: &str) -> Result<i64, Problem> {
    match raw {
        Raw::Toml(item) => item.as_integer().ok_or_else(|| type_error(item, expected)),
        Raw::Text(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("expected {expected}, found {text:?}").into()),
    }
}

fn count(raw: Raw<'_>) -> Result<u32, Problem> {
    let expected = "a non-negative integer such as 30";
    let n = integer(raw, expected)?;
    u32::try_from(n).map_err(|_| format!("expected {expected}, found {n}").into())
}

fn gzip_level(raw: Raw<'_>) -> Result<u32, Problem> {
    let expected = "a gzip level from 0 to 9";
    let n = integer(raw, expected)?;
    match u32::try_from(n) {
        Ok(level) if level <= 9 => Ok(level),
        _ => Err(format!("expected {expected}, found {n}").into()),
    }
}

fn boolean(raw: Raw<'_>) -> Result<bool, Problem> {
    match raw {
        Raw::Toml(item) => item
            .as_bool()
            .ok_or_else(|| type_error(item, "true or false")),
        Raw::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("expected true or false, found {text:?}").into()),
        },
    }
}

fn rotation_method(s: &str) -> Result<RotationMethod, Problem> {
    RotationMethod::ALL
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| {
            let names: Vec<&str> = RotationMethod::ALL.iter().map(|m| m.as_str()).collect();
            format!(
                "invalid method {s:?} (expected one of: {})",
                names.join(", ")
            )
            .into()
        })
}

/// PM2's own rule (its `paths.js`): `$PM2_HOME`, else `$HOME/.pm2`, else `/etc/.pm2`.
/// Relative values resolve against `cwd`.
fn pm2_home_from_env(env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> PathBuf {
    let home = match (non_empty(env("PM2_HOME")), non_empty(env("HOME"))) {
        (Some(pm2_home), _) => PathBuf::from(pm2_home),
        (None, Some(home)) => Path::new(&home).join(".pm2"),
        (None, None) => PathBuf::from("/etc/.pm2"),
    };
    resolve_path(cwd, &home)
}

fn string_array(item: &Item) -> Result<Vec<String>, Problem> {
    let expected = "an array of strings such as [\"logs/pm2/*.log\"]";
    let array = item.as_array().ok_or_else(|| type_error(item, expected))?;
    array
        .iter()
        .enumerate()
        .map(|(i, value)| match value.as_str() {
            Some(s) => Ok(s.to_string()),
            None => Err(Problem {
                message: format!(
                    "element {}: expected a string, found {}",
                    i + 1,
                    value.type_name()
                ),
                span: value.span(),
            }),
        })
        .collect()
}

fn resolve_globs(patterns: &[String], cwd: &Path) -> Result<Vec<String>, Problem> {
    if patterns.is_empty() {
        return Err(String::from("must name at least one glob").into());
    }
    patterns
        .iter()
        .map(|p| {
            let resolved = resolve_glob(cwd, not_empty(p)?);
            glob::Pattern::new(&resolved)
                .map_err(|e| Problem::from(format!("invalid glob {p:?}: {e}")))?;
            Ok(resolved)
        })
        .collect()
}

/// A socket address; `localhost` is taken as 127.0.0.1 since `SocketAddr` has no names.
fn listen_addr(s: &str) -> Result<String, Problem> {
    let s = s.trim();
    let addr = match s.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        None => s.parse::<SocketAddr>().ok(),
    };
    match addr {
        Some(addr) => Ok(addr.to_string()),
        None => Err(format!(
            "invalid address {s:?} (expected host:port such as 127.0.0.1:9171 or [::1]:9171)"
        )
        .into()),
    }
}

/// `path` against `cwd` unless absolute, without `.` components.
fn resolve_path(cwd: &Path, path: &Path) -> PathBuf {
    cwd.join(path)
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// A glob against `cwd` unless absolute. The cwd part is escaped so a directory named
/// `a[1]` is not read as a pattern.
fn resolve_glob(cwd: &Path, pattern: &str) -> String {
    let relative: PathBuf = Path::new(pattern)
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    if relative.is_absolute() {
        return relative.to_string_lossy().into_owned();
    }
    let base = glob::Pattern::escape(&cwd.to_string_lossy());
    Path::new(&base)
        .join(relative)
        .to_string_lossy()
        .into_owned()
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------
// The three layers over the defaults

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// A `[services.NAME]` table as read from the file: checked then, applied at the end of
/// [`Config::load`] on top of the final `[rotation]`.
struct ServiceTable {
    name: String,
    file: PathBuf,
    keys: Vec<ServiceKey>,
}

struct ServiceKey {
    spec: &'static KeySpec<RotationPolicy>,
    /// `services.NAME.key`
    dotted: String,
    value: Item,
    /// where the value is, for the error message
    line: usize,
    column: usize,
}

impl ServiceTable {
    fn apply(&self, policy: &mut RotationPolicy, cwd: &Path) -> Result<(), ConfigError> {
        for key in &self.keys {
            (key.spec.set)(policy, Raw::Toml(&key.value), cwd).map_err(|p| {
                ConfigError::Invalid {
                    file: self.file.clone(),
                    line: key.line,
                    column: key.column,
                    key: key.dotted.clone(),
                    message: p.message,
                }
            })?;
        }
        Ok(())
    }
}

/// Applies the file to `config`, except the `[services.NAME]` tables, which it returns.
fn apply_file(
    config: &mut Config,
    text: &str,
    file: &Path,
    cwd: &Path,
) -> Result<Vec<ServiceTable>, ConfigError> {
    let position = |span: Option<Range<usize>>| line_column(text, span.map_or(0, |s| s.start));
    let doc = Document::parse(text).map_err(|e| {
        let (line, column) = position(e.span());
        ConfigError::Syntax {
            file: file.to_path_buf(),
            line,
            column,
            message: e.message().trim().replace('\n', "; "),
        }
    })?;

    let unknown = |key: String, item: &Item, key_span, known: String| {
        let (line, column) = position(key_span);
        ConfigError::Unknown {
            file: file.to_path_buf(),
            line,
            column,
            what: if item.is_table_like() { "table" } else { "key" },
            key,
            known,
        }
    };
    let invalid = |key: String, problem: Problem, item: &Item, key_span: Option<Range<usize>>| {
        let (line, column) = position(problem.span.or_else(|| item.span()).or(key_span));
        ConfigError::Invalid {
            file: file.to_path_buf(),
            line,
            column,
            key,
            message: problem.message,
        }
    };

    let mut services = Vec::new();
    let root = doc.as_table();
    for (name, item) in root.iter() {
        let key_span = root.key(name).and_then(|k| k.span());
        if let Some(spec) = TOP_KEYS.iter().find(|k| k.name == name) {
            (spec.set)(config, Raw::Toml(item), cwd)
                .map_err(|p| invalid(name.to_string(), p, item, key_span))?;
            continue;
        }
        if name == SERVICES {
            let Some(tables) = item.as_table_like() else {
                let problem = type_error(item, "tables such as [services.api]");
                return Err(invalid(name.to_string(), problem, item, key_span));
            };
            for (service, value) in tables.iter() {
                let dotted = format!("{SERVICES}.{service}");
                let key_span = tables.key(service).and_then(|k| k.span());
                let Some(table) = value.as_table_like() else {
                    let problem =
                        type_error(value, &format!("a table [{dotted}] of [rotation] keys"));
                    return Err(invalid(dotted, problem, value, key_span));
                };
                if service.trim().is_empty() {
                    let problem = Problem {
                        message: String::from("a service name must not be empty"),
                        span: key_span,
                    };
                    return Err(invalid(dotted, problem, value, None));
                }
                let mut keys = Vec::new();
                for (key, value) in table.iter() {
                    let dotted = format!("{dotted}.{key}");
                    let key_span = table.key(key).and_then(|k| k.span());
                    let Some(spec) = ROTATION_KEYS.iter().find(|k| k.name == key) else {
                        let known = known_keys(
                            &format!("{SERVICES}.{}", Key::new(service).display_repr()),
                            ROTATION_KEYS.iter().map(|k| k.name),
                        );
                        return Err(unknown(dotted, value, key_span, known));
                    };
                    let (line, column) = position(value.span().or(key_span));
                    keys.push(ServiceKey {
                        spec,
                        dotted,
                        value: value.clone(),
                        line,
                        column,
                    });
                }
                let table = ServiceTable {
                    name: service.to_string(),
                    file: file.to_path_buf(),
                    keys,
                };
                // Checked now, so that the file's mistakes are reported as it is read.
                table.apply(&mut config.rotation.clone(), cwd)?;
                services.push(table);
            }
            continue;
        }
        let Some(section) = SECTIONS.iter().find(|s| s.name == name) else {
            return Err(unknown(name.to_string(), item, key_span, known_top_level()));
        };
        let Some(table) = item.as_table_like() else {
            let problem = type_error(item, &format!("a table [{name}]"));
            return Err(invalid(name.to_string(), problem, item, key_span));
        };
        for (key, value) in table.iter() {
            let dotted = format!("{name}.{key}");
            let key_span = table.key(key).and_then(|k| k.span());
            let Some(spec) = section.keys.iter().find(|k| k.name == key) else {
                return Err(unknown(dotted, value, key_span, known_in(section)));
            };
            (spec.set)(config, Raw::Toml(value), cwd)
                .map_err(|p| invalid(dotted, p, value, key_span))?;
        }
    }
    Ok(services)
}

fn known_top_level() -> String {
    let keys: Vec<&str> = TOP_KEYS.iter().map(|k| k.name).collect();
    let tables: Vec<String> = SECTIONS
        .iter()
        .map(|s| format!("[{}]", s.name))
        .chain([format!("[{SERVICES}.NAME]")])
        .collect();
    format!(
        "known top-level keys: {}; tables: {}",
        keys.join(", "),
        tables.join(", ")
    )
}

fn known_in(section: &SectionSpec) -> String {
    known_keys(section.name, section.keys.iter().map(|k| k.name))
}

fn known_keys<'a>(table: &str, keys: impl Iterator<Item = &'a str>) -> String {
    format!(
        "known keys in [{table}]: {}",
        keys.collect::<Vec<_>>().join(", ")
    )
}

fn apply_env(
    config: &mut Config,
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<(), ConfigError> {
    let all = TOP_KEYS.iter().map(|k| (None, k)).chain(
        SECTIONS
            .iter()
            .flat_map(|s| s.keys.iter().map(move |k| (Some(s.name), k))),
    );
    for (section, spec) in all {
        let var = env_name(section, spec.name);
        // An empty variable counts as unset: `LOGAGG_API_LISTEN= logagg` means "no override".
        let Some(value) = non_empty(env(&var)) else {
            continue;
        };
        (spec.set)(config, Raw::Text(&value), cwd).map_err(|p| ConfigError::Env {
            var,
            message: p.message,
        })?;
    }
    Ok(())
}

fn apply_flags(config: &mut Config, flags: &Overrides, cwd: &Path) -> Result<(), ConfigError> {
    let flag_error = |flag, p: Problem| ConfigError::Flag {
        flag,
        message: p.message,
    };
    if let Some(dir) = &flags.data_dir {
        if dir.as_os_str().is_empty() {
            return Err(flag_error(
                "--data-dir",
                String::from("must not be empty").into(),
            ));
        }
        config.data_dir = resolve_path(cwd, dir);
    }
    if !flags.paths.is_empty() {
        config.sources.paths =
            resolve_globs(&flags.paths, cwd).map_err(|p| flag_error("--path", p))?;
    }
    if let Some(listen) = &flags.listen {
        config.api.listen = listen_addr(listen).map_err(|p| flag_error("--listen", p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cwd() -> PathBuf {
        PathBuf::from("/srv/app")
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// A temporary working directory holding `config/logagg.toml` with `text`.
    /// `text` (what `to_toml` printed for `config`) loads back to the same configuration.
    fn assert_round_trips(config: &Config, text: &str) {
        let dir = with_default_file(text);
        let again = Config::load(&Overrides::default(), &no_env, dir.path()).unwrap();
        assert_eq!(
            Config {
                file: config.file.clone(),
                ..again
            },
            *config,
            "{text}"
        );
    }

    fn with_default_file(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join(DEFAULT_FILE), text).unwrap();
        dir
    }

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = with_default_file(text);
        Config::load(&Overrides::default(), &no_env, dir.path())
    }

    /// The error message for `text` as the default file, with the temp dir made stable.
    fn error_for(text: &str) -> String {
        load_text(text).unwrap_err().to_string()
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&Overrides::default(), &no_env, dir.path()).unwrap();
        assert_eq!(config, Config::defaults(dir.path()));
        assert_eq!(config.file, None);

        let d = Config::defaults(&cwd());
        assert_eq!(d.data_dir, PathBuf::from("/srv/app/logs/logagg"));
        assert_eq!(d.sources.paths, vec!["/srv/app/logs/pm2/*.log".to_string()]);
        assert_eq!(d.sources.max_line_bytes, 1 << 20);
        assert_eq!(d.sources.rescan_interval, Duration::from_secs(5));
        assert_eq!(d.sources.linger, Duration::from_secs(2));
        assert_eq!(d.index.commit_interval, Duration::from_secs(1));
        assert_eq!(d.index.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(d.index.writer_memory, 64 << 20);
        assert_eq!(d.api.listen, "127.0.0.1:9171");
        // PM2's fallback when neither PM2_HOME nor HOME is set.
        assert_eq!(d.pm2.home, PathBuf::from("/etc/.pm2"));
        assert_eq!(
            d.rotation,
            RotationPolicy {
                max_size: Some(10 << 20),
                max_age: Some(Duration::from_secs(86_400)),
                retain: 30,
                max_archive_age: Some(Duration::from_secs(30 * 86_400)),
                max_total_size: None,
                compress: true,
                compress_level: 6,
                archive_dir: PathBuf::from("/srv/app/logs/pm2/archive"),
                method: RotationMethod::Auto,
            }
        );
        assert!(d.services.is_empty());
        assert_eq!(d.policy_for("api"), &d.rotation);
    }

    #[test]
    fn shipped_file_equals_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_FILE);
        let flags = Overrides {
            config: Some(shipped.clone()),
            ..Overrides::default()
        };
        let loaded = Config::load(&flags, &no_env, &cwd()).unwrap();
        assert_eq!(loaded.file.as_deref(), Some(shipped.as_path()));
        assert_eq!(
            Config {
                file: None,
                ..loaded
            },
            Config::defaults(&cwd())
        );
    }

    #[test]
    fn shipped_file_names_every_key() {
        let keys = |text: &str| -> Vec<String> {
            let doc = Document::parse(text.to_string()).unwrap();
            let mut keys = Vec::new();
            for (name, item) in doc.as_table().iter() {
                match item.as_table_like() {
                    Some(table) => keys.extend(table.iter().map(|(k, _)| format!("{name}.{k}"))),
                    None => keys.push(name.to_string()),
                }
            }
            keys
        };
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_FILE))
                .unwrap();
        assert_eq!(keys(&shipped), keys(&Config::defaults(&cwd()).to_toml()));
    }

    #[test]
    fn file_overrides_defaults() {
        let dir = with_default_file(
            r#"
data_dir = "/var/lib/logagg"
[sources]
paths = ["/var/log/pm2/*.log", "extra/*.log"]
max_line_bytes = 65536
rescan_interval = "30s"
linger = "500ms"
[index]
commit_interval = "2s"
retention = "7d"
writer_memory = "128MiB"
[api]
listen = "0.0.0.0:8080"
"#,
        );
        let c = Config::load(&Overrides::default(), &no_env, dir.path()).unwrap();
        assert_eq!(c.file, Some(dir.path().join(DEFAULT_FILE)));
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/logagg"));
        assert_eq!(
            c.sources.paths,
            vec![
                "/var/log/pm2/*.log".to_string(),
                format!("{}/extra/*.log", dir.path().display())
            ]
        );
        assert_eq!(c.sources.max_line_bytes, 65536);
        assert_eq!(c.sources.rescan_interval, Duration::from_secs(30));
        assert_eq!(c.sources.linger, Duration::from_millis(500));
        assert_eq!(c.index.commit_interval, Duration::from_secs(2));
        assert_eq!(c.index.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.index.writer_memory, 128 << 20);
        assert_eq!(c.api.listen, "0.0.0.0:8080");
    }

    #[test]
    fn partial_file_keeps_other_defaults_and_accepts_inline_and_dotted_tables() {
        let dir =
            with_default_file("index.retention = \"1d\"\napi = { listen = \"localhost:80\" }\n");
        let c = Config::load(&Overrides::default(), &no_env, dir.path()).unwrap();
        let mut expected = Config::defaults(dir.path());
        expected.index.retention = Duration::from_secs(86_400);
        expected.api.listen = "127.0.0.1:80".to_string();
        expected.file = c.file.clone();
        assert_eq!(c, expected);
    }

    #[test]
    fn file_from_env_and_flag() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.toml"),
            "[api]\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            "[api]\nlisten = \"127.0.0.1:2\"\n",
        )
        .unwrap();
        let env = env_of(&[("LOGAGG_CONFIG", "a.toml")]);
        let c = Config::load(&Overrides::default(), &env, dir.path()).unwrap();
        assert_eq!(c.api.listen, "127.0.0.1:1");
        assert_eq!(c.file, Some(dir.path().join("a.toml")));
        let flags = Overrides {
            config: Some(dir.path().join("b.toml")),
            ..Overrides::default()
        };
        let c = Config::load(&flags, &env, dir.path()).unwrap();
        assert_eq!(c.api.listen, "127.0.0.1:2");
    }

    #[test]
    fn env_overrides_file() {
        let dir = with_default_file("[index]\nretention = \"7d\"\ncommit_interval = \"3s\"\n");
        let env = env_of(&[
            ("LOGAGG_INDEX_RETENTION", "14d"),
            ("LOGAGG_SOURCES_PATHS", "a/*.log, /abs/*.log"),
            ("LOGAGG_DATA_DIR", "state"),
            ("LOGAGG_API_LISTEN", "[::1]:9000"),
            ("LOGAGG_SOURCES_MAX_LINE_BYTES", "2MiB"),
            // empty means unset
            ("LOGAGG_INDEX_WRITER_MEMORY", ""),
        ]);
        let c = Config::load(&Overrides::default(), &env, dir.path()).unwrap();
        assert_eq!(c.index.retention, Duration::from_secs(14 * 86_400));
        assert_eq!(c.index.commit_interval, Duration::from_secs(3));
        assert_eq!(
            c.sources.paths,
            vec![
                format!("{}/a/*.log", dir.path().display()),
                "/abs/*.log".to_string()
            ]
        );
        assert_eq!(c.data_dir, dir.path().join("state"));
        assert_eq!(c.api.listen, "[::1]:9000");
        assert_eq!(c.sources.max_line_bytes, 2 << 20);
        assert_eq!(c.index.writer_memory, 64 << 20);
    }

    #[test]
    fn flags_override_env() {
        let env = env_of(&[
            ("LOGAGG_DATA_DIR", "/from/env"),
            ("LOGAGG_SOURCES_PATHS", "/env/*.log"),
            ("LOGAGG_API_LISTEN", "127.0.0.1:1"),
        ]);
        let flags = Overrides {
            config: None,
            data_dir: Some(PathBuf::from("./flag/dir")),
            paths: vec!["flag/*.log".to_string()],
            listen: Some("localhost:2".to_string()),
        };
        let c = Config::load(&flags, &env, &cwd()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/app/flag/dir"));
        assert_eq!(c.sources.paths, vec!["/srv/app/flag/*.log".to_string()]);
        assert_eq!(c.api.listen, "127.0.0.1:2");
    }

    #[test]
    fn relative_paths_resolve_against_cwd() {
        let c = Config::defaults(Path::new("/home/a[1]"));
        assert_eq!(c.data_dir, PathBuf::from("/home/a[1]/logs/logagg"));
        // The cwd is escaped so it matches itself literally.
        assert_eq!(
            c.sources.paths,
            vec!["/home/a[[]1[]]/logs/pm2/*.log".to_string()]
        );
        let pattern = glob::Pattern::new(&c.sources.paths[0]).unwrap();
        assert!(pattern.matches("/home/a[1]/logs/pm2/api-out.log"));

        let flags = Overrides {
            data_dir: Some(PathBuf::from("/abs/data")),
            paths: vec!["./x/*.log".to_string(), "/y/*.log".to_string()],
            ..Overrides::default()
        };
        let c = Config::load(&flags, &no_env, &cwd()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/abs/data"));
        assert_eq!(
            c.sources.paths,
            vec!["/srv/app/x/*.log".to_string(), "/y/*.log".to_string()]
        );
    }

    #[test]
    fn syntax_error_names_file_line_and_column() {
        assert_eq!(
            error_for("[index]\nretention = \"7d\"\ncommit = \n"),
            "config/logagg.toml:3:10: syntax error: string values must be quoted, expected literal string"
        );
    }

    #[test]
    fn unknown_key_and_table() {
        assert_eq!(
            error_for("\n[index]\nretention = \"7d\"\n\ncomit_interval = \"1s\"\n"),
            "config/logagg.toml:5:1: unknown key \"index.comit_interval\" \
             (known keys in [index]: commit_interval, retention, writer_memory)"
        );
        assert_eq!(
            error_for("[api]\nlisten = \"127.0.0.1:1\"\n\n[indx]\nretention = \"7d\"\n"),
            "config/logagg.toml:4:2: unknown table \"indx\" \
             (known top-level keys: data_dir; tables: [sources], [index], [api], [pm2], \
             [rotation], [services.NAME])"
        );
        assert_eq!(
            error_for("datadir = \"x\"\n"),
            "config/logagg.toml:1:1: unknown key \"datadir\" \
             (known top-level keys: data_dir; tables: [sources], [index], [api], [pm2], \
             [rotation], [services.NAME])"
        );
        assert_eq!(
            error_for("[sources]\n[sources.extra]\nx = 1\n"),
            "config/logagg.toml:2:10: unknown table \"sources.extra\" \
             (known keys in [sources]: paths, max_line_bytes, rescan_interval, linger)"
        );
    }

    #[test]
    fn wrong_types() {
        assert_eq!(
            error_for("[sources]\npaths = [\"a\"]\n\nmax_line_bytes = true\n"),
            "config/logagg.toml:4:18: key \"sources.max_line_bytes\": \
             expected a size such as \"1MiB\" or a number of bytes, found boolean"
        );
        assert_eq!(
            error_for("[index]\ncommit_interval = 5\n"),
            "config/logagg.toml:2:19: key \"index.commit_interval\": \
             expected a string such as \"5s\", found integer"
        );
        assert_eq!(
            error_for("[sources]\npaths = [\"a/*.log\",\n  3]\n"),
            "config/logagg.toml:3:3: key \"sources.paths\": element 2: expected a string, found integer"
        );
        assert_eq!(
            error_for("[sources]\npaths = \"a/*.log\"\n"),
            "config/logagg.toml:2:9: key \"sources.paths\": \
             expected an array of strings such as [\"logs/pm2/*.log\"], found string"
        );
        assert_eq!(
            error_for("index = 3\n"),
            "config/logagg.toml:1:9: key \"index\": expected a table [index], found integer"
        );
        assert_eq!(
            error_for("data_dir = 1\n"),
            "config/logagg.toml:1:12: key \"data_dir\": \
             expected a string such as \"logs/logagg\", found integer"
        );
    }

    #[test]
    fn bad_values() {
        let e = |text: &str| error_for(text);
        assert_eq!(
            e("# comment\n\n\n\n\n[index]\ncommit_interval = \"1x\"\n"),
            "config/logagg.toml:7:19: key \"index.commit_interval\": \
             invalid duration \"1x\" (expected e.g. 500ms, 10s, 5m, 2h, 7d)"
        );
        assert_eq!(
            e("[sources]\nmax_line_bytes = \"12XB\"\n"),
            "config/logagg.toml:2:18: key \"sources.max_line_bytes\": \
             invalid size \"12XB\" (expected e.g. 512KiB, 10MiB, 1GiB)"
        );
        assert_eq!(
            e("[sources]\nmax_line_bytes = 512\n"),
            "config/logagg.toml:2:18: key \"sources.max_line_bytes\": \
             512B is below the minimum of 1KiB"
        );
        assert_eq!(
            e("[sources]\nmax_line_bytes = -1\n"),
            "config/logagg.toml:2:18: key \"sources.max_line_bytes\": \
             invalid size -1 (a number of bytes cannot be negative)"
        );
        assert_eq!(
            e("[index]\ncommit_interval = \"0s\"\n"),
            "config/logagg.toml:2:19: key \"index.commit_interval\": must be greater than 0"
        );
        assert_eq!(
            e("[index]\nwriter_memory = \"10MiB\"\n"),
            "config/logagg.toml:2:17: key \"index.writer_memory\": 10MiB is below the minimum \
             of 15MiB (tantivy needs at least 15MB per indexing thread)"
        );
        assert_eq!(
            e("[sources]\npaths = []\n"),
            "config/logagg.toml:2:9: key \"sources.paths\": must name at least one glob"
        );
        let glob = e("[sources]\npaths = [\"a/[x.log\"]\n");
        assert!(
            glob.starts_with(
                "config/logagg.toml:2:9: key \"sources.paths\": invalid glob \"a/[x.log\": "
            ),
            "{glob}"
        );
        assert_eq!(
            e("[api]\nlisten = \"nowhere\"\n"),
            "config/logagg.toml:2:10: key \"api.listen\": invalid address \"nowhere\" \
             (expected host:port such as 127.0.0.1:9171 or [::1]:9171)"
        );
        // A zero retention or linger is allowed.
        assert!(load_text("[index]\nretention = \"0s\"\n[sources]\nlinger = \"0s\"\n").is_ok());
    }

    #[test]
    fn missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let flags = Overrides {
            config: Some(PathBuf::from("/x/y.toml")),
            ..Overrides::default()
        };
        assert_eq!(
            Config::load(&flags, &no_env, dir.path())
                .unwrap_err()
                .to_string(),
            "config file /x/y.toml: No such file or directory"
        );
        let env = env_of(&[("LOGAGG_CONFIG", "conf/missing.toml")]);
        assert_eq!(
            Config::load(&Overrides::default(), &env, dir.path())
                .unwrap_err()
                .to_string(),
            "config file conf/missing.toml: No such file or directory"
        );
    }

    #[test]
    fn env_errors_name_the_variable() {
        let env = env_of(&[("LOGAGG_INDEX_RETENTION", "abc")]);
        assert_eq!(
            Config::load(&Overrides::default(), &env, &cwd())
                .unwrap_err()
                .to_string(),
            "environment variable LOGAGG_INDEX_RETENTION: \
             invalid duration \"abc\" (expected e.g. 500ms, 10s, 5m, 2h, 7d)"
        );
        let env = env_of(&[("LOGAGG_INDEX_WRITER_MEMORY", "1MiB")]);
        assert!(Config::load(&Overrides::default(), &env, &cwd())
            .unwrap_err()
            .to_string()
            .starts_with("environment variable LOGAGG_INDEX_WRITER_MEMORY: 1MiB is below"));
    }

    #[test]
    fn unknown_env_names() {
        let ok = [
            "PATH",
            "LOGAGG_CONFIG",
            "LOGAGG_ADDR",
            "LOGAGG_TOKEN",
            "LOGAGG_LOG",
            "LOGAGG_DATA_DIR",
            "LOGAGG_SOMETHING_ELSE",
            "LOGAGG_INDEX_RETENTION",
            "LOGAGG_SOURCES_MAX_LINE_BYTES",
        ];
        assert!(Config::check_env_names(ok).is_ok());
        assert_eq!(
            Config::check_env_names(["PATH", "LOGAGG_INDEX_COMIT_INTERVAL"])
                .unwrap_err()
                .to_string(),
            "environment variable LOGAGG_INDEX_COMIT_INTERVAL: unknown key \
             \"index.comit_interval\" (known variables: LOGAGG_INDEX_COMMIT_INTERVAL, \
             LOGAGG_INDEX_RETENTION, LOGAGG_INDEX_WRITER_MEMORY)"
        );
        assert!(Config::check_env_names(["LOGAGG_API_PORT"]).is_err());
    }

    #[test]
    fn flag_errors() {
        let flags = Overrides {
            listen: Some("9171".to_string()),
            ..Overrides::default()
        };
        assert_eq!(
            Config::load(&flags, &no_env, &cwd())
                .unwrap_err()
                .to_string(),
            "flag --listen: invalid address \"9171\" \
             (expected host:port such as 127.0.0.1:9171 or [::1]:9171)"
        );
    }

    #[test]
    fn to_toml_round_trips() {
        let dir = with_default_file(
            "data_dir = \"/d\"\n[sources]\npaths = [\"a/*.log\", \"/b/\\\"q\\\".log\"]\n\
             max_line_bytes = 1536\nlinger = \"1m30s\"\n[index]\nretention = \"1.5d\"\n\
             writer_memory = \"20MB\"\n",
        );
        let config = Config::load(&Overrides::default(), &no_env, dir.path()).unwrap();
        let text = config.to_toml();
        for key in [
            "data_dir",
            "paths",
            "max_line_bytes",
            "writer_memory",
            "listen",
        ] {
            assert!(
                text.contains(&format!("\n{key} = ")),
                "{key} missing in\n{text}"
            );
        }
        assert_round_trips(&config, &text);

        let defaults = Config::defaults(&cwd());
        let dir = with_default_file(&defaults.to_toml());
        let again = Config::load(&Overrides::default(), &no_env, dir.path()).unwrap();
        assert_eq!(
            Config {
                file: None,
                ..again
            },
            defaults
        );
    }

    const ROTATION_KEY_LIST: &str = "max_size, max_age, retain, max_archive_age, \
                                     max_total_size, compress, compress_level, archive_dir, method";

    #[test]
    fn rotation_from_the_file() {
        let dir = with_default_file(
            r#"
[rotation]
max_size = "1GiB"
max_age = "12h"
retain = 0
max_archive_age = ""
max_total_size = 1048576
compress = false
compress_level = 9
archive_dir = "/var/log/archive"
method = "copytruncate"
"#,
        );
        let c = Config::load(&Overrides::default(), &no_env, dir.path()).unwrap();
        assert_eq!(
            c.rotation,
            RotationPolicy {
                max_size: Some(1 << 30),
                max_age: Some(Duration::from_secs(12 * 3_600)),
                retain: 0,
                max_archive_age: None,
                max_total_size: Some(1 << 20),
                compress: false,
                compress_level: 9,
                archive_dir: PathBuf::from("/var/log/archive"),
                method: RotationMethod::CopyTruncate,
            }
        );
        assert!(c.services.is_empty());

        // "" turns the optional limits off; a relative archive_dir is under the cwd.
        let dir = with_default_file(
            "[rotation]\nmax_size = \"\"\nmax_age = \"\"\nmax_total_size = \"2GiB\"\n\
             archive_dir = \"./old\"\nmethod = \"Reload\"\n",
        );
        let c = Config::load(&Overrides::default(), &no_env, dir.path()).unwrap();
        assert_eq!(c.rotation.max_size, None);
        assert_eq!(c.rotation.max_age, None);
        assert_eq!(c.rotation.max_total_size, Some(2 << 30));
        assert_eq!(c.rotation.archive_dir, dir.path().join("old"));
        assert_eq!(c.rotation.method, RotationMethod::Reload);
        assert_eq!(
            c.rotation.max_archive_age,
            Some(Duration::from_secs(30 * 86_400))
        );
    }

    #[test]
    fn services_inherit_the_final_rotation() {
        // The service tables come first in the file: they still apply on top of the
        // [rotation] below them, and of the environment.
        let dir = with_default_file(
            r#"
[services.duck]
max_size = "50MiB"
archive_dir = "duck/archive"

[services."my app"]
method = "collapse"
retain = 3

[rotation]
retain = 5
max_size = "20MiB"
compress_level = 1
"#,
        );
        let env = env_of(&[("LOGAGG_ROTATION_COMPRESS", "false")]);
        let c = Config::load(&Overrides::default(), &env, dir.path()).unwrap();
        let rotation = RotationPolicy {
            max_size: Some(20 << 20),
            retain: 5,
            compress: false,
            compress_level: 1,
            ..Config::defaults(dir.path()).rotation
        };
        assert_eq!(c.rotation, rotation);
        assert_eq!(
            c.services.keys().collect::<Vec<_>>(),
            vec!["duck", "my app"]
        );
        assert_eq!(
            c.policy_for("duck"),
            &RotationPolicy {
                max_size: Some(50 << 20),
                archive_dir: dir.path().join("duck/archive"),
                ..rotation.clone()
            }
        );
        assert_eq!(
            c.policy_for("my app"),
            &RotationPolicy {
                method: RotationMethod::Collapse,
                retain: 3,
                ..rotation.clone()
            }
        );
        assert_eq!(c.policy_for("cat"), &rotation);

        // Inline and dotted tables too.
        let c = load_text(
            "services.duck.retain = 7\nservices.cat = { max_age = \"\" }\n[rotation]\nretain = 2\n",
        )
        .unwrap();
        assert_eq!(c.policy_for("duck").retain, 7);
        assert_eq!(c.policy_for("cat").retain, 2);
        assert_eq!(c.policy_for("cat").max_age, None);
        assert_eq!(c.rotation.max_age, Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn env_overrides_rotation() {
        let dir = with_default_file("[rotation]\nmax_size = \"1MiB\"\nretain = 4\n");
        let env = env_of(&[
            ("LOGAGG_ROTATION_MAX_SIZE", "20MiB"),
            ("LOGAGG_ROTATION_MAX_AGE", "6h"),
            ("LOGAGG_ROTATION_COMPRESS", "FALSE"),
            ("LOGAGG_ROTATION_COMPRESS_LEVEL", "0"),
            ("LOGAGG_ROTATION_ARCHIVE_DIR", "arch"),
            ("LOGAGG_ROTATION_METHOD", "copytruncate"),
        ]);
        let c = Config::load(&Overrides::default(), &env, dir.path()).unwrap();
        assert_eq!(c.rotation.max_size, Some(20 << 20));
        assert_eq!(c.rotation.max_age, Some(Duration::from_secs(6 * 3_600)));
        assert_eq!(c.rotation.retain, 4);
        assert!(!c.rotation.compress);
        assert_eq!(c.rotation.compress_level, 0);
        assert_eq!(c.rotation.archive_dir, dir.path().join("arch"));
        assert_eq!(c.rotation.method, RotationMethod::CopyTruncate);

        let error = |pairs: &[(&str, &str)]| {
            Config::load(&Overrides::default(), &env_of(pairs), &cwd())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(&[("LOGAGG_ROTATION_RETAIN", "-1")]),
            "environment variable LOGAGG_ROTATION_RETAIN: \
             expected a non-negative integer such as 30, found -1"
        );
        assert_eq!(
            error(&[("LOGAGG_ROTATION_RETAIN", "many")]),
            "environment variable LOGAGG_ROTATION_RETAIN: \
             expected a non-negative integer such as 30, found \"many\""
        );
        assert_eq!(
            error(&[("LOGAGG_ROTATION_COMPRESS", "yes")]),
            "environment variable LOGAGG_ROTATION_COMPRESS: expected true or false, found \"yes\""
        );
        assert_eq!(
            error(&[("LOGAGG_ROTATION_COMPRESS_LEVEL", "10")]),
            "environment variable LOGAGG_ROTATION_COMPRESS_LEVEL: \
             expected a gzip level from 0 to 9, found 10"
        );
    }

    #[test]
    fn rotation_errors() {
        assert_eq!(
            error_for("[rotation]\ncompress_level = 12\n"),
            "config/logagg.toml:2:18: key \"rotation.compress_level\": \
             expected a gzip level from 0 to 9, found 12"
        );
        assert_eq!(
            error_for("[rotation]\ncompress_level = -1\n"),
            "config/logagg.toml:2:18: key \"rotation.compress_level\": \
             expected a gzip level from 0 to 9, found -1"
        );
        assert_eq!(
            error_for("[rotation]\nmethod = \"rename\"\n"),
            "config/logagg.toml:2:10: key \"rotation.method\": invalid method \"rename\" \
             (expected one of: auto, reload, collapse, copytruncate)"
        );
        assert_eq!(
            error_for("[rotation]\nmax_size = \"10 parsecs\"\n"),
            "config/logagg.toml:2:12: key \"rotation.max_size\": \
             invalid size \"10 parsecs\" (expected e.g. 512KiB, 10MiB, 1GiB)"
        );
        assert_eq!(
            error_for("[rotation]\nmax_size = 0\n"),
            "config/logagg.toml:2:12: key \"rotation.max_size\": \
             must be greater than 0 (\"\" turns it off)"
        );
        assert_eq!(
            error_for("[rotation]\nmax_archive_age = \"0s\"\n"),
            "config/logagg.toml:2:19: key \"rotation.max_archive_age\": \
             must be greater than 0 (\"\" turns it off)"
        );
        assert_eq!(
            error_for("[rotation]\nretain = -1\n"),
            "config/logagg.toml:2:10: key \"rotation.retain\": \
             expected a non-negative integer such as 30, found -1"
        );
        assert_eq!(
            error_for("[rotation]\nretain = \"30\"\n"),
            "config/logagg.toml:2:10: key \"rotation.retain\": \
             expected a non-negative integer such as 30, found string"
        );
        assert_eq!(
            error_for("[rotation]\ncompress = \"yes\"\n"),
            "config/logagg.toml:2:12: key \"rotation.compress\": \
             expected true or false, found string"
        );
        assert_eq!(
            error_for("[rotation]\narchive_dir = \"\"\n"),
            "config/logagg.toml:2:15: key \"rotation.archive_dir\": must not be empty"
        );
        assert_eq!(
            error_for("[rotation]\nmax_sise = \"1MiB\"\n"),
            format!(
                "config/logagg.toml:2:1: unknown key \"rotation.max_sise\" \
                 (known keys in [rotation]: {ROTATION_KEY_LIST})"
            )
        );
        assert_eq!(
            error_for("[pm2]\nhome = 1\n"),
            "config/logagg.toml:2:8: key \"pm2.home\": \
             expected a string such as \"/home/app/.pm2\", found integer"
        );
    }

    #[test]
    fn service_errors() {
        assert_eq!(
            error_for("[services.duck]\nmax_size = \"50MiB\"\nretian = 3\n"),
            format!(
                "config/logagg.toml:3:1: unknown key \"services.duck.retian\" \
                 (known keys in [services.duck]: {ROTATION_KEY_LIST})"
            )
        );
        assert_eq!(
            error_for("[services.duck.extra]\nx = 1\n"),
            format!(
                "config/logagg.toml:1:16: unknown table \"services.duck.extra\" \
                 (known keys in [services.duck]: {ROTATION_KEY_LIST})"
            )
        );
        assert_eq!(
            error_for("[rotation]\nretain = 2\n\n[services]\nduck = 3\n"),
            "config/logagg.toml:5:8: key \"services.duck\": \
             expected a table [services.duck] of [rotation] keys, found integer"
        );
        assert_eq!(
            error_for("services = \"duck\"\n"),
            "config/logagg.toml:1:12: key \"services\": \
             expected tables such as [services.api], found string"
        );
        assert_eq!(
            error_for("[services.duck]\ncompress_level = 10\n"),
            "config/logagg.toml:2:18: key \"services.duck.compress_level\": \
             expected a gzip level from 0 to 9, found 10"
        );
        assert_eq!(
            error_for("[services.duck]\nmethod = \"move\"\n"),
            "config/logagg.toml:2:10: key \"services.duck.method\": invalid method \"move\" \
             (expected one of: auto, reload, collapse, copytruncate)"
        );
        assert_eq!(
            error_for("[services.\"\"]\nretain = 1\n"),
            "config/logagg.toml:1:11: key \"services.\": a service name must not be empty"
        );
    }

    #[test]
    fn rotation_and_services_env_names() {
        assert!(Config::check_env_names([
            "LOGAGG_ROTATION_MAX_SIZE",
            "LOGAGG_PM2_HOME",
            "PM2_HOME"
        ])
        .is_ok());
        assert_eq!(
            Config::check_env_names(["LOGAGG_ROTATION_MAXSIZE"])
                .unwrap_err()
                .to_string(),
            format!(
                "environment variable LOGAGG_ROTATION_MAXSIZE: unknown key \"rotation.maxsize\" \
                 (known variables: {})",
                ROTATION_KEYS
                    .iter()
                    .map(|k| format!("LOGAGG_ROTATION_{}", k.name.to_ascii_uppercase()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
        assert_eq!(
            Config::check_env_names(["PATH", "LOGAGG_SERVICES_DUCK_MAX_SIZE"])
                .unwrap_err()
                .to_string(),
            "environment variable LOGAGG_SERVICES_DUCK_MAX_SIZE: unknown variable: \
             [services.NAME] keys can only be set in the config file, not from the environment"
        );
        assert!(Config::check_env_names(["LOGAGG_PM2_HOM"]).is_err());
    }

    #[test]
    fn pm2_home_resolution() {
        let home = |file: &str, pairs: &[(&str, &str)]| {
            let dir = with_default_file(file);
            let c = Config::load(&Overrides::default(), &env_of(pairs), dir.path()).unwrap();
            (c.pm2.home, dir)
        };
        let all = [
            ("PM2_HOME", "/pm2/home"),
            ("HOME", "/home/u"),
            ("LOGAGG_PM2_HOME", "/from/logagg/env"),
        ];
        // LOGAGG_PM2_HOME > the key > PM2_HOME > HOME/.pm2 > /etc/.pm2
        let (h, _) = home("[pm2]\nhome = \"/from/file\"\n", &all);
        assert_eq!(h, PathBuf::from("/from/logagg/env"));
        let (h, _) = home("[pm2]\nhome = \"/from/file\"\n", &all[..2]);
        assert_eq!(h, PathBuf::from("/from/file"));
        let (h, _) = home("[pm2]\nhome = \"\"\n", &all[..2]);
        assert_eq!(h, PathBuf::from("/pm2/home"));
        let (h, _) = home("", &[("PM2_HOME", ""), ("HOME", "/home/u")]);
        assert_eq!(h, PathBuf::from("/home/u/.pm2"));
        let (h, _) = home("", &[]);
        assert_eq!(h, PathBuf::from("/etc/.pm2"));
        // Relative values are taken from the working directory.
        let (h, dir) = home("[pm2]\nhome = \"./pm2\"\n", &all[..2]);
        assert_eq!(h, dir.path().join("pm2"));
        let (h, dir) = home("", &[("PM2_HOME", "run/pm2")]);
        assert_eq!(h, dir.path().join("run/pm2"));
        // The resolved path is what `config check` shows, and reads back the same.
        let (h, dir) = home("", &[("HOME", "/home/u")]);
        let text = Config::load(
            &Overrides::default(),
            &env_of(&[("HOME", "/home/u")]),
            dir.path(),
        )
        .unwrap()
        .to_toml();
        assert!(text.contains("\nhome = \"/home/u/.pm2\""), "{text}");
        assert_eq!(h, PathBuf::from("/home/u/.pm2"));
    }

    #[test]
    fn to_toml_writes_services_that_differ() {
        let dir = with_default_file(
            "[rotation]\nretain = 5\nmax_total_size = \"1GiB\"\n\
             [services.duck]\nmax_size = \"50MiB\"\nretain = 5\n\
             [services.\"my app\"]\nmax_total_size = \"\"\n\
             [services.same]\nmethod = \"auto\"\n",
        );
        let config = Config::load(&Overrides::default(), &no_env, dir.path()).unwrap();
        let text = config.to_toml();
        let services = &text[text.find("\n# [services.NAME]").unwrap()..];
        assert_eq!(
            services,
            "\n# [services.NAME]: only the keys where the service differs from [rotation].\n\
             [services.duck]\n\
             max_size = \"50MiB\"  # rotate a live file when it grows past this (\"\" disables)\n\
             \n\
             [services.\"my app\"]\n\
             max_total_size = \"\"  # the archives of one live file together (\"\": no limit)\n\
             \n\
             [services.same]\n"
        );
        assert!(
            text.contains("\n[rotation]\nmax_size = \"10MiB\""),
            "{text}"
        );
        assert!(text.contains("\nmax_total_size = \"1GiB\""), "{text}");
        assert!(text.contains("\nmethod = \"auto\""), "{text}");
        assert_round_trips(&config, &text);
    }

    #[test]
    fn error_display_is_one_line() {
        for text in [
            "a = ",
            "[index\n",
            "x = \"\n\"",
            "[[index]]\n",
            "[index]\nretention = [\n1,\n",
        ] {
            let message = error_for(text);
            assert!(!message.contains('\n'), "{message:?}");
        }
    }
}
