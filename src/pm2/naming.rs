//! PM2's log file names, read backwards: which app, which stream and which instance a
//! file under `$PM2_HOME/logs` belongs to, and the rule PM2 uses to turn an app name into
//! the part of a file name it writes. Pure string work on the file name only; nothing here
//! touches the file system.

use std::path::Path;

use crate::record::Stream;

/// What a log file's name says about its writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOrigin {
    pub service: String,
    pub stream: Stream,
    /// PM2's `pm_id`, present only when `merge_logs` is off (always so in cluster mode).
    pub instance: Option<u32>,
}

/// The stream suffixes PM2 puts between the app name and `.log` (or `-<pm_id>.log`).
/// `-err` is not PM2's default but a common `error_file` choice.
const STREAM_SUFFIXES: [(&str, Stream); 3] = [
    ("-out", Stream::Out),
    ("-error", Stream::Err),
    ("-err", Stream::Err),
];

/// Reads service, stream and instance from a file name following PM2's naming:
/// `<name>-out.log`, `<name>-error.log`, `<name>-err.log`, each optionally with
/// `-<pm_id>` before `.log`, and `<name>.log` for the combined `log_file`. Anything else
/// is attributed to its file stem on the out stream, so no file is ever left without a
/// service.
pub fn origin_of(path: &Path) -> FileOrigin {
    // A non-UTF-8 name cannot come from PM2 (it writes JS strings), so a lossy view is
    // only there to give such a file some stable name rather than to match it.
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();

    if let Some(base) = file_name.strip_suffix(".log").filter(|b| !b.is_empty()) {
        if let Some(origin) = split_instance(base).or_else(|| split_stream(base, None)) {
            return origin;
        }
        // The combined `log_file`, or a name that only looks like a stream file
        // (`api-out-x.log`): the whole base is the service.
        return FileOrigin {
            service: base.to_string(),
            stream: Stream::Out,
            instance: None,
        };
    }

    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    FileOrigin {
        service: stem,
        stream: Stream::Out,
        instance: None,
    }
}

/// Whether `path`, whose origin is `origin`, is an app's combined `<name>.log` (PM2's
/// `log_file`, every stream of the app in one file).
pub fn is_combined(path: &Path, origin: &FileOrigin) -> bool {
    path.file_name()
        .and_then(|n| n.to_str()?.strip_suffix(".log"))
        .is_some_and(|stem| stem == origin.service)
}

/// `<name>-<stream>-<digits>`: the per-instance form written when `merge_logs` is off.
fn split_instance(base: &str) -> Option<FileOrigin> {
    let (head, digits) = base.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Too many digits for a u32 cannot be a pm_id; treat the name as an ordinary one.
    let pm_id: u32 = digits.parse().ok()?;
    split_stream(head, Some(pm_id))
}

/// `<name>-<stream>` with a non-empty name.
fn split_stream(base: &str, instance: Option<u32>) -> Option<FileOrigin> {
    STREAM_SUFFIXES.iter().find_map(|&(suffix, stream)| {
        let name = base.strip_suffix(suffix).filter(|n| !n.is_empty())?;
        Some(FileOrigin {
            service: name.to_string(),
            stream,
            instance,
        })
    })
}

/// PM2's rule for the app-name part of a log file name: every character other than ASCII
/// letters, digits, `.` and `-` becomes `-`.
///
/// PM2 applies a JavaScript regex without the `u` flag, so it replaces UTF-16 code units:
/// a character outside the Basic Multilingual Plane (an emoji) becomes two dashes. Doing
/// the same keeps the result equal to the file name PM2 really writes.
pub fn sanitize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            out.push(c);
        } else {
            for _ in 0..c.len_utf16() {
                out.push('-');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(name: &str) -> (String, Stream, Option<u32>) {
        let o = origin_of(Path::new(name));
        (o.service, o.stream, o.instance)
    }

    fn expect(
        service: &str,
        stream: Stream,
        instance: Option<u32>,
    ) -> (String, Stream, Option<u32>) {
        (service.to_string(), stream, instance)
    }

    #[test]
    fn only_the_name_only_log_is_combined() {
        for (name, combined) in [
            ("duck.log", true),
            ("duck-out.log", false),
            ("duck-error-3.log", false),
        ] {
            let path = Path::new("/logs").join(name);
            assert_eq!(is_combined(&path, &origin_of(&path)), combined, "{name}");
        }
    }

    #[test]
    fn out_and_error_files() {
        assert_eq!(origin("api-out.log"), expect("api", Stream::Out, None));
        assert_eq!(origin("api-error.log"), expect("api", Stream::Err, None));
        assert_eq!(origin("api-err.log"), expect("api", Stream::Err, None));
    }

    #[test]
    fn directories_are_ignored() {
        assert_eq!(
            origin("/home/u/.pm2/logs/api-error.log"),
            expect("api", Stream::Err, None)
        );
        // A directory that looks like a stream file says nothing about the file in it.
        assert_eq!(
            origin("/x/web-out.log/app.log"),
            expect("app", Stream::Out, None)
        );
    }

    #[test]
    fn per_instance_files() {
        assert_eq!(origin("api-out-3.log"), expect("api", Stream::Out, Some(3)));
        assert_eq!(
            origin("api-error-0.log"),
            expect("api", Stream::Err, Some(0))
        );
        assert_eq!(
            origin("api-err-12.log"),
            expect("api", Stream::Err, Some(12))
        );
        assert_eq!(
            origin("my-app.v2-out-4294967295.log"),
            expect("my-app.v2", Stream::Out, Some(u32::MAX))
        );
    }

    #[test]
    fn instance_must_be_digits() {
        assert_eq!(
            origin("api-out-x.log"),
            expect("api-out-x", Stream::Out, None)
        );
        assert_eq!(
            origin("api-out-3a.log"),
            expect("api-out-3a", Stream::Out, None)
        );
        assert_eq!(
            origin("api-out-.log"),
            expect("api-out-", Stream::Out, None)
        );
        // Does not fit a u32: not a pm_id.
        assert_eq!(
            origin("api-out-99999999999.log"),
            expect("api-out-99999999999", Stream::Out, None)
        );
    }

    #[test]
    fn digits_without_stream_are_part_of_the_name() {
        assert_eq!(origin("api-3.log"), expect("api-3", Stream::Out, None));
        assert_eq!(origin("v2-out.log"), expect("v2", Stream::Out, None));
        assert_eq!(origin("3-out-1.log"), expect("3", Stream::Out, Some(1)));
    }

    #[test]
    fn stream_words_in_the_middle_of_a_name() {
        assert_eq!(
            origin("my-out-service-out.log"),
            expect("my-out-service", Stream::Out, None)
        );
        assert_eq!(
            origin("my-error-svc-error.log"),
            expect("my-error-svc", Stream::Err, None)
        );
        assert_eq!(
            origin("worker-out-error-2.log"),
            expect("worker-out", Stream::Err, Some(2))
        );
        assert_eq!(
            origin("api-out-out.log"),
            expect("api-out", Stream::Out, None)
        );
    }

    #[test]
    fn combined_log_file() {
        assert_eq!(origin("api.log"), expect("api", Stream::Out, None));
        assert_eq!(
            origin("my-app.v2.log"),
            expect("my-app.v2", Stream::Out, None)
        );
    }

    #[test]
    fn name_must_not_be_empty() {
        assert_eq!(origin("-out.log"), expect("-out", Stream::Out, None));
        assert_eq!(origin("-error.log"), expect("-error", Stream::Out, None));
        assert_eq!(origin("-out-1.log"), expect("-out-1", Stream::Out, None));
        // `.log` alone is a dot-file whose stem is its whole name.
        assert_eq!(origin(".log"), expect(".log", Stream::Out, None));
    }

    #[test]
    fn other_files_use_the_stem() {
        assert_eq!(origin("api-out.txt"), expect("api-out", Stream::Out, None));
        assert_eq!(
            origin("api-out.log.gz"),
            expect("api-out.log", Stream::Out, None)
        );
        assert_eq!(origin("README"), expect("README", Stream::Out, None));
        assert_eq!(origin("api-out.LOG"), expect("api-out", Stream::Out, None));
        assert_eq!(origin("/"), expect("", Stream::Out, None));
    }

    #[test]
    fn sanitize_follows_pm2() {
        assert_eq!(sanitize_name("my_app.v2"), "my-app.v2");
        assert_eq!(sanitize_name("api"), "api");
        assert_eq!(sanitize_name("a b/c:d"), "a-b-c-d");
        assert_eq!(sanitize_name("Api-2.x"), "Api-2.x");
        assert_eq!(sanitize_name(""), "");
        // One dash per UTF-16 code unit, as PM2's JavaScript regex does.
        assert_eq!(sanitize_name("é"), "-");
        assert_eq!(sanitize_name("a😀b"), "a--b");
    }

    #[test]
    fn sanitized_names_round_trip() {
        let name = sanitize_name("my_app.v2");
        let file = format!("{name}-out-7.log");
        assert_eq!(origin(&file), expect("my-app.v2", Stream::Out, Some(7)));
    }
}
