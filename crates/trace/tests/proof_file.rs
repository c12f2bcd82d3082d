#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The offline verifier of proof files, on files built in memory: a good file verifies, and
//! each kind of tampering fails naming the record and why.

use relais_trace::checkpoint::{self, CheckpointKey};
use relais_trace::proof_file::{self, Consistency, Failure, ProofFile, ProvenRecord};
use relais_trace::tree::{self, Frontier, Known};

const ORIGIN: &str = "localhost/relais-trace";

/// A log of `n` records in memory: its bodies and stored hashes.
struct MemLog {
    bodies: Vec<String>,
    known: Known,
    frontier: Frontier,
}

impl MemLog {
    fn new(n: usize) -> Self {
        let mut log = MemLog {
            bodies: Vec::new(),
            known: Known::default(),
            frontier: Frontier::empty(),
        };
        log.grow(n);
        log
    }

    fn grow(&mut self, n: usize) {
        for _ in 0..n {
            let body = format!(
                r#"{{"id":"{}","kind":"connection.code_issued","payload":{{"n":{}}}}}"#,
                uuid::Uuid::new_v4(),
                self.bodies.len()
            );
            for (idx, h) in self.frontier.push(tree::leaf_hash(&body)).unwrap() {
                self.known.0.insert(idx, h);
            }
            self.bodies.push(body);
        }
    }

    fn size(&self) -> u64 {
        self.frontier.size()
    }

    fn checkpoint(&self, key: &CheckpointKey) -> String {
        key.sign(self.size(), self.frontier.root().unwrap())
            .unwrap()
    }

    /// The file of records `picks` against the checkpoint of the whole log.
    fn file(&self, key: &CheckpointKey, picks: &[u64]) -> ProofFile {
        let size = self.size();
        ProofFile {
            format: proof_file::FORMAT.into(),
            origin: ORIGIN.into(),
            case: "TICKET-1".into(),
            exported_at: String::new(),
            selection: "test".into(),
            truncated: false,
            checkpoint: self.checkpoint(key),
            records: picks
                .iter()
                .map(|&i| ProvenRecord {
                    leaf_index: i,
                    body: self.bodies[i as usize].clone(),
                    proof: proof_file::encode(
                        &tree::inclusion(i, size).unwrap().run(&self.known).unwrap(),
                    ),
                })
                .collect(),
            consistency: None,
        }
    }
}

fn key() -> CheckpointKey {
    CheckpointKey::development(ORIGIN).unwrap()
}

fn failure_at(file: &ProofFile, vkey: &str) -> (usize, String) {
    match proof_file::verify(file, vkey) {
        Err(Failure::Record {
            position, reason, ..
        }) => (position, reason),
        other => panic!("expected a record's failure, got {other:?}"),
    }
}

#[test]
fn a_good_file_verifies_and_round_trips_through_its_json() {
    let key = key();
    let log = MemLog::new(37);
    let file = log.file(&key, &[0, 5, 17, 36]);
    let text = serde_json::to_string_pretty(&file).unwrap();
    let read = proof_file::parse(&text).unwrap();
    assert_eq!(read, file);
    let v = proof_file::verify(&read, key.verifier_key()).unwrap();
    assert_eq!(v.records, 4);
    assert_eq!(v.checkpoint.size, 37);
    assert_eq!(v.case, "TICKET-1");
    assert!(v.extended_to.is_none());
    // A one-record log: its only record has an empty audit path.
    let one = MemLog::new(1);
    proof_file::verify(&one.file(&key, &[0]), key.verifier_key()).unwrap();
}

#[test]
fn an_altered_body_fails_naming_its_record() {
    let key = key();
    let mut file = MemLog::new(20).file(&key, &[2, 9, 14]);
    file.records[1].body = file.records[1].body.replace("\"n\":9", "\"n\":90");
    let (position, reason) = failure_at(&file, key.verifier_key());
    assert_eq!(position, 2);
    assert!(reason.contains("altered"), "{reason}");
}

#[test]
fn a_swapped_record_or_a_wrong_index_fails() {
    let key = key();
    let log = MemLog::new(20);
    // Two records' bodies exchanged, each keeping its place's proof.
    let mut file = log.file(&key, &[3, 8]);
    let first = file.records[0].body.clone();
    file.records[0].body = file.records[1].body.clone();
    file.records[1].body = first;
    assert_eq!(failure_at(&file, key.verifier_key()).0, 1);
    // A record given another leaf index (with its own proof).
    let mut file = log.file(&key, &[3, 8]);
    file.records[1].leaf_index = 9;
    let (position, reason) = failure_at(&file, key.verifier_key());
    assert_eq!(position, 2);
    assert!(reason.contains("index is wrong"), "{reason}");
    // Records out of order.
    let mut file = log.file(&key, &[3, 8]);
    file.records.swap(0, 1);
    let (position, reason) = failure_at(&file, key.verifier_key());
    assert_eq!(position, 2);
    assert!(reason.contains("out of order"), "{reason}");
    // An index past the checkpoint's tree.
    let mut file = log.file(&key, &[3]);
    file.records[0].leaf_index = 20;
    assert!(failure_at(&file, key.verifier_key()).1.contains("not in"));
}

#[test]
fn a_truncated_proof_fails_naming_its_record() {
    let key = key();
    let mut file = MemLog::new(40).file(&key, &[1, 30]);
    file.records[1].proof.pop();
    let (position, reason) = failure_at(&file, key.verifier_key());
    assert_eq!(position, 2);
    assert!(reason.contains("truncated"), "{reason}");
    // A hash of the path replaced.
    let mut file = MemLog::new(40).file(&key, &[1, 30]);
    file.records[0].proof[2] = proof_file::encode(&[tree::leaf_hash("x")])[0].clone();
    assert_eq!(failure_at(&file, key.verifier_key()).0, 1);
}

#[test]
fn a_forged_checkpoint_fails() {
    let key = key();
    let log = MemLog::new(12);
    let mut file = log.file(&key, &[4]);
    // The size line changed: the signature no longer holds.
    file.checkpoint = file.checkpoint.replacen("\n12\n", "\n13\n", 1);
    match proof_file::verify(&file, key.verifier_key()) {
        Err(Failure::Checkpoint(why)) => assert!(why.contains("signature"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A checkpoint signed by another key of the same name.
    let (private, _) = checkpoint::generate_key(ORIGIN).unwrap();
    let forger = CheckpointKey::parse(private.expose(), ORIGIN).unwrap();
    let file = log.file(&forger, &[4]);
    assert!(matches!(
        proof_file::verify(&file, key.verifier_key()),
        Err(Failure::Checkpoint(_))
    ));
}

#[test]
fn another_key_or_another_log_fails() {
    let key = key();
    let file = MemLog::new(5).file(&key, &[1]);
    let (_, other_vkey) = checkpoint::generate_key(ORIGIN).unwrap();
    assert!(matches!(
        proof_file::verify(&file, &other_vkey),
        Err(Failure::Checkpoint(_))
    ));
    let (_, elsewhere) = checkpoint::generate_key("other.example/trace").unwrap();
    assert!(matches!(
        proof_file::verify(&file, &elsewhere),
        Err(Failure::OtherLog { .. })
    ));
    // The file claims another origin than its checkpoint's.
    let other = CheckpointKey::development("other.example/trace").unwrap();
    let mut file = MemLog::new(5).file(&key, &[1]);
    file.origin = "other.example/trace".into();
    assert!(matches!(
        proof_file::verify(&file, other.verifier_key()),
        Err(Failure::Checkpoint(_))
    ));
}

#[test]
fn a_consistency_proof_to_a_newer_checkpoint_is_checked() {
    let key = key();
    let mut log = MemLog::new(10);
    let mut file = log.file(&key, &[2, 7]);
    log.grow(15);
    let proof = tree::consistency(10, 25).unwrap().run(&log.known).unwrap();
    file.consistency = Some(Consistency {
        checkpoint: log.checkpoint(&key),
        proof: proof_file::encode(&proof),
    });
    let v = proof_file::verify(&file, key.verifier_key()).unwrap();
    assert_eq!(v.extended_to.map(|c| c.size), Some(25));
    // A proof of another pair of trees.
    let wrong = tree::consistency(9, 25).unwrap().run(&log.known).unwrap();
    if let Some(c) = file.consistency.as_mut() {
        c.proof = proof_file::encode(&wrong);
    }
    assert!(matches!(
        proof_file::verify(&file, key.verifier_key()),
        Err(Failure::Consistency(_))
    ));
}

#[test]
fn audit_path_lengths_are_those_of_the_proofs() {
    let log = MemLog::new(70);
    for size in 1..=70u64 {
        for index in 0..size {
            let proof = tree::inclusion(index, size)
                .unwrap()
                .run(&log.known)
                .unwrap();
            assert_eq!(proof_file::audit_path_len(index, size), proof.len());
        }
    }
}

#[test]
fn a_file_of_another_format_is_refused() {
    let key = key();
    let mut file = MemLog::new(3).file(&key, &[0]);
    file.format = "relais-proof-file/9".into();
    let text = serde_json::to_string(&file).unwrap();
    assert!(matches!(proof_file::parse(&text), Err(Failure::Format(_))));
}
