//! Runs `relais-bench --smoke` (a few seconds, tiny load, in-process hub) so `make test`
//! proves the bench harness still works. No timed assertion: only that sign-ins complete,
//! the token endpoint answers, and every sign-in is traced exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use serde_json::Value;

#[test]
fn smoke_run_completes_sign_ins_and_traces_each_once() {
    let dir = std::env::temp_dir().join(format!("relais-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("smoke.json");
    let out = Command::new(env!("CARGO_BIN_EXE_relais-bench"))
        .arg("--smoke")
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "relais-bench --smoke failed:\n{stderr}"
    );
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    // A point of whole sign-ins, then one by single sign-on.
    let points = results["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{results:#}");
    assert_eq!(points[0]["sso"], false);
    assert_eq!(points[1]["sso"], true);
    for p in points {
        assert!(p["completed"].as_u64().unwrap() > 0, "{p:#}");
        assert_eq!(p["traces"]["lost"], 0, "{p:#}");
        assert_eq!(p["traces"]["doubled"], 0, "{p:#}");
        assert_eq!(p["traces"]["expected"], p["traces"]["complete"], "{p:#}");
        assert!(p["processes"].as_array().is_some_and(|a| !a.is_empty()));
        assert!(
            p["pg_counters"]["commits"]
                .as_f64()
                .is_some_and(|c| c > 0.0),
            "{p:#}"
        );
    }

    let token = &results["token"][0];
    assert!(token["ok"].as_u64().unwrap() > 0, "{token:#}");
    assert_eq!(token["traces"]["lost"], 0, "{token:#}");
    assert_eq!(token["traces"]["doubled"], 0, "{token:#}");
    assert_eq!(results["stacks"][0]["chain"]["intact"], true, "{results:#}");
}
