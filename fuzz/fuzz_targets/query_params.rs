//! Feeds arbitrary query strings to the parameter parsers of every route: they must never
//! panic, and a refusal must name the parameter it is about.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logagg::api::check_query_string;

const ROUTES: [&str; 8] = [
    "/api/search",
    "/api/events",
    "/api/tail",
    "/api/histogram",
    "/api/rotate",
    "/api/status",
    "/api/services",
    "/metrics",
];

fuzz_target!(|data: &[u8]| {
    let Some((&route, raw)) = data.split_first() else {
        return;
    };
    let route = ROUTES[usize::from(route) % ROUTES.len()];
    let raw = String::from_utf8_lossy(raw);
    if let Err(e) = check_query_string(&raw, route) {
        assert!(e.contains("parameter"), "{route}?{raw}: {e}");
    }
});
