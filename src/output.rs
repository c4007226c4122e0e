//! How commands report: a human summary, or exactly one JSON object with `--json`.

use serde::Serialize;

/// Prints `value` as one JSON object when `json`, otherwise the human text.
pub fn report<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: could not encode the report as JSON: {e}"),
        }
    } else {
        println!("{}", human());
    }
}
