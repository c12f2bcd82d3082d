//! `relais trace witness-key` and `relais trace witness` as a witness's operator runs them,
//! with no hub configuration; then `relais trace verify --witness-key` on a proof file whose
//! checkpoint the witness cosigned.

use std::path::Path;
use std::process::Stdio;

use relais_trace::checkpoint::CheckpointKey;
use relais_trace::proof_file::{self, ProofFile, ProvenRecord};
use relais_trace::tree::{self, Frontier, Known};
use relais_trace::witness;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const NAME: &str = "witness.example.org/e2e";

/// The witness's process on a free loopback port, and its URL.
async fn start_witness(dir: &Path, log_vkey: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["trace", "witness", "--key"])
        .arg(dir.join("key"))
        .arg("--state")
        .arg(dir.join("state.json"))
        .args(["--log", log_vkey, "--listen", "127.0.0.1:0"])
        .env_clear()
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the witness exited");
        if line.contains("listening on") {
            break line.rsplit(' ').next().unwrap().to_string();
        }
    };
    // Its later output is read on, so that it never writes to a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{addr}"))
}

async fn add(url: &str, body: String) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn verify_offline(file: &Path, key: &str, witnesses: &[&str]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relais"));
    command
        .args(["trace", "verify", "--file"])
        .arg(file)
        .args(["--key", key]);
    for w in witnesses {
        command.args(["--witness-key", w]);
    }
    let out = command.env_clear().output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Records `bodies` in a tree: its stored hashes and frontier.
fn tree_of(bodies: &[String]) -> (Known, Frontier) {
    let (mut known, mut frontier) = (Known::default(), Frontier::empty());
    for b in bodies {
        for (idx, h) in frontier.push(tree::leaf_hash(b)).unwrap() {
            known.0.insert(idx, h);
        }
    }
    (known, frontier)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_run_from_the_command_line_cosigns_and_the_offline_verify_requires_it() {
    let dir = std::env::temp_dir().join(format!("relais-witness-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["trace", "witness-key", NAME])
        .arg(dir.join("key"))
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let wkey = printed.lines().last().unwrap().to_string();
    assert!(wkey.starts_with(&format!("{NAME}+")), "{printed}");
    // Never over an existing key.
    let again = Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["trace", "witness-key", NAME])
        .arg(dir.join("key"))
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());

    let log =
        CheckpointKey::development(relais_trace::TraceConfig::default().origin.as_str()).unwrap();
    let bodies: Vec<String> = (0..6).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    let (known, frontier) = tree_of(&bodies);
    let note = log.sign(frontier.size(), frontier.root().unwrap()).unwrap();

    let (mut child, url) = start_witness(&dir, log.verifier_key()).await;
    let (status, line) = add(&url, witness::request_body(0, &[], &note)).await;
    assert_eq!(status, 200, "{line}");
    // Killed at once: what it cosigned was kept before it answered.
    child.kill().await.unwrap();
    let (mut child, url) = start_witness(&dir, log.verifier_key()).await;
    let mut forked = bodies.clone();
    forked[1] = r#"{"n":"rewritten"}"#.into();
    let (_, fork) = tree_of(&forked);
    let other = log.sign(fork.size(), fork.root().unwrap()).unwrap();
    assert_eq!(
        add(&url, witness::request_body(0, &[], &other)).await,
        (409, "6\n".to_string())
    );
    assert_eq!(
        add(&url, witness::request_body(6, &[], &other)).await.0,
        409
    );
    child.kill().await.unwrap();

    // A proof file of records 1 and 4 against the cosigned checkpoint.
    let file = ProofFile {
        format: proof_file::FORMAT.into(),
        origin: log.origin().into(),
        case: "TICKET-W".into(),
        exported_at: String::new(),
        selection: "test".into(),
        truncated: false,
        checkpoint: relais_trace::cosignature::append(&note, std::slice::from_ref(&line)),
        records: [1u64, 4]
            .iter()
            .map(|&i| ProvenRecord {
                leaf_index: i,
                body: bodies[i as usize].clone(),
                proof: proof_file::encode(&tree::inclusion(i, 6).unwrap().run(&known).unwrap()),
            })
            .collect(),
        consistency: None,
    };
    let path = dir.join("case.json");
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    let (code, out) = verify_offline(&path, log.verifier_key(), &[&wkey]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("cosigned by the witness {NAME}")),
        "{out}"
    );
    // Another witness's key: its cosignature is missing.
    let (_, absent) = relais_trace::cosignature::generate_key(NAME).unwrap();
    let (code, out) = verify_offline(&path, log.verifier_key(), &[&wkey, &absent]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no cosignature"), "{out}");
    // The cosignature moved onto another checkpoint: forged.
    let mut moved = file.clone();
    moved.checkpoint = relais_trace::cosignature::append(&other, &[line]);
    let (fork_known, _) = tree_of(&forked);
    moved.records = [1u64, 4]
        .iter()
        .map(|&i| ProvenRecord {
            leaf_index: i,
            body: forked[i as usize].clone(),
            proof: proof_file::encode(&tree::inclusion(i, 6).unwrap().run(&fork_known).unwrap()),
        })
        .collect();
    let moved_path = dir.join("moved.json");
    std::fs::write(&moved_path, serde_json::to_string(&moved).unwrap()).unwrap();
    // The log's signature alone holds; the witness's does not.
    let (code, out) = verify_offline(&moved_path, log.verifier_key(), &[]).await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = verify_offline(&moved_path, log.verifier_key(), &[&wkey]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("does not verify"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
