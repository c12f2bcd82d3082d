#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Witnesses (C2SP tlog-witness, tlog-cosignature): the decision on trees built in memory,
//! the HTTP witness on a free loopback port with its state file, and the real service
//! having its checkpoints cosigned, a rewrite in PostgreSQL named against a witnessed
//! checkpoint, and a second tree refused by the witness.

use std::path::PathBuf;

use relais_proto::trace::v1::{ExportCaseRequest, GetCheckpointRequest, VerifyChainRequest};
use relais_runtime::Shutdown;
use relais_trace::checkpoint::{self, CheckpointKey};
use relais_trace::cosignature::{self, CosignatureError, WitnessKey, WitnessVerifier};
use relais_trace::proof_file::{self, Failure};
use relais_trace::tree::{self, Frontier, Hash, Known};
use relais_trace::witness::{self, AddCheckpoint, Refusal, State, Witness};
use relais_trace::witness_server::WitnessService;
use relais_trace::{TraceConfig, WitnessLink};

use crate::chain::recompute_tree;
use crate::common::{SignIn, Trace, base_time, sign_in};

const ORIGIN: &str = "localhost/relais-trace";
const NAME: &str = "witness.example.org/w1";
const NOW: u64 = 1_790_000_000;

/// A tree of records in memory.
struct Mem {
    known: Known,
    frontier: Frontier,
}

impl Mem {
    fn of(bodies: &[String]) -> Self {
        let mut m = Mem {
            known: Known::default(),
            frontier: Frontier::empty(),
        };
        for b in bodies {
            for (idx, h) in m.frontier.push(tree::leaf_hash(b)).unwrap() {
                m.known.0.insert(idx, h);
            }
        }
        m
    }

    fn root(&self) -> Hash {
        self.frontier.root().unwrap()
    }

    fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The request from `old`, with this tree's consistency proof, of its signed checkpoint.
    fn request(&self, key: &CheckpointKey, old: u64) -> AddCheckpoint {
        let proof = if old == 0 || old == self.size() {
            Vec::new()
        } else {
            tree::consistency(old, self.size())
                .unwrap()
                .run(&self.known)
                .unwrap()
        };
        AddCheckpoint {
            old,
            proof,
            checkpoint: key.sign(self.size(), self.root()).unwrap(),
        }
    }
}

fn records(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!(r#"{{"{prefix}":{i}}}"#)).collect()
}

fn log_key() -> CheckpointKey {
    CheckpointKey::development(ORIGIN).unwrap()
}

fn witness_key() -> WitnessKey {
    let (private, _) = cosignature::generate_key(NAME).unwrap();
    WitnessKey::parse(private.expose()).unwrap()
}

/// A witness of the development log.
fn witness(key: WitnessKey) -> Witness {
    Witness::new(key, &[log_key().verifier_key().to_string()]).unwrap()
}

/// Decides and, when accepted, keeps the state as the server does.
fn add(w: &Witness, state: &mut State, r: &AddCheckpoint) -> Result<String, Refusal> {
    let accepted = w.add_checkpoint(r, state, NOW)?;
    state.insert(accepted.origin, accepted.cosigned);
    Ok(accepted.cosignature)
}

#[test]
fn a_witness_key_and_its_cosignature_round_trip_and_others_are_refused() {
    // Many keys: their base64 holds '+' now and then, as the format's separator does.
    for _ in 0..20 {
        let (private, public) = cosignature::generate_key(NAME).unwrap();
        let key = WitnessKey::parse(private.expose()).unwrap();
        assert_eq!(key.verifier_key(), public);
        WitnessVerifier::parse(&public).unwrap();
    }
    let key = witness_key();
    let verifier = WitnessVerifier::parse(&key.verifier_key()).unwrap();
    let note = log_key().sign(3, tree::leaf_hash("x")).unwrap();
    let line = key.cosign(&note, NOW).unwrap();
    assert!(line.starts_with(&format!("\u{2014} {NAME} ")), "{line}");
    let cosigned = cosignature::append(&note, std::slice::from_ref(&line));
    assert_eq!(verifier.check(&cosigned), Ok(NOW));
    // The log's signature still verifies on the cosigned note.
    checkpoint::open(&cosigned, log_key().verifier_key(), ORIGIN).unwrap();
    // No line: missing; the line moved onto another checkpoint: forged; another key of the
    // same name: its line is not this witness's.
    assert_eq!(
        verifier.check(&note),
        Err(CosignatureError::Missing(NAME.into()))
    );
    let other_note = log_key().sign(4, tree::leaf_hash("x")).unwrap();
    assert_eq!(
        verifier.check(&cosignature::append(
            &other_note,
            std::slice::from_ref(&line)
        )),
        Err(CosignatureError::Forged(NAME.into()))
    );
    let impostor = witness_key();
    let theirs = cosignature::append(&note, &[impostor.cosign(&note, NOW).unwrap()]);
    assert_eq!(
        verifier.check(&theirs),
        Err(CosignatureError::Missing(NAME.into()))
    );
    // The log's key (type 0x01) is not a witness key; malformed keys are named.
    for bad in [
        log_key().verifier_key().to_string(),
        format!("{NAME}+00000000+AAAA"),
        "no-plus".into(),
    ] {
        assert!(WitnessVerifier::parse(&bad).is_err(), "{bad}");
    }
    assert!(WitnessKey::parse("PRIVATE+KEY+x+1+AAAA").is_err());
    assert!(cosignature::generate_key("two words").is_err());
}

#[test]
fn a_witness_cosigns_a_consistent_successor_and_refuses_another_tree() {
    let key = witness_key();
    let verifier = WitnessVerifier::parse(&key.verifier_key()).unwrap();
    let w = witness(key);
    let mut state = State::new();
    let bodies = records("a", 12);
    let five = Mem::of(&bodies[..5]);
    let nine = Mem::of(&bodies[..9]);

    // First sight: from 0, no proof.
    let r5 = five.request(&log_key(), 0);
    let line = add(&w, &mut state, &r5).unwrap();
    verifier
        .check(&cosignature::append(&r5.checkpoint, &[line]))
        .unwrap();
    assert_eq!(state[ORIGIN].size, 5);
    // A consistent successor, with the proof from 5.
    let r9 = nine.request(&log_key(), 5);
    add(&w, &mut state, &r9).unwrap();
    assert_eq!((state[ORIGIN].size, state[ORIGIN].root), (9, nine.root()));
    // The same tree again: cosigned again.
    add(&w, &mut state, &nine.request(&log_key(), 9)).unwrap();

    // A second tree, same origin and key: one record differs.
    let mut forked = bodies.clone();
    forked[2] = r#"{"a":"rewritten"}"#.into();
    let fork9 = Mem::of(&forked[..9]);
    let fork12 = Mem::of(&forked[..12]);
    let before = state.clone();
    // Of the same size: a conflict with what was cosigned.
    assert!(matches!(
        add(&w, &mut state, &fork9.request(&log_key(), 9)),
        Err(Refusal::Conflict { size: 9, .. })
    ));
    // Larger, its proof from the fork's own 9: does not verify against the root cosigned.
    let refused = add(&w, &mut state, &fork12.request(&log_key(), 9)).unwrap_err();
    assert!(matches!(refused, Refusal::Inconsistent(_)), "{refused:?}");
    assert_eq!(refused.status(), 422);
    // As a first sight (old 0): the witness says where it is.
    let refused = add(&w, &mut state, &fork12.request(&log_key(), 0)).unwrap_err();
    assert_eq!(refused.status(), 409);
    assert!(matches!(refused, Refusal::Conflict { size: 9, .. }));
    // A smaller tree (a rollback) is a conflict too.
    assert!(matches!(
        add(&w, &mut state, &five.request(&log_key(), 5)),
        Err(Refusal::Conflict { size: 9, .. })
    ));
    // Nothing refused moved the state.
    assert_eq!(state, before);
    // The honest log goes on.
    add(&w, &mut state, &Mem::of(&bodies).request(&log_key(), 9)).unwrap();
    assert_eq!(state[ORIGIN].size, 12);
}

#[test]
fn a_witness_refuses_unknown_logs_unsigned_checkpoints_and_bad_requests() {
    let w = witness(witness_key());
    let state = State::new();
    let five = Mem::of(&records("b", 5));
    let status = |r: &AddCheckpoint| w.add_checkpoint(r, &state, NOW).unwrap_err().status();
    // Another origin: 404.
    let elsewhere = CheckpointKey::development("elsewhere.example/log").unwrap();
    assert_eq!(status(&five.request(&elsewhere, 0)), 404);
    // Signed by another key of the log's name: 403.
    let (private, _) = checkpoint::generate_key(ORIGIN).unwrap();
    let other = CheckpointKey::parse(private.expose(), ORIGIN).unwrap();
    assert_eq!(status(&five.request(&other, 0)), 403);
    // The signed root changed: 403 (the signature no longer holds).
    let mut altered = five.request(&log_key(), 0);
    let root = five.root().to_string();
    altered.checkpoint = altered
        .checkpoint
        .replace(&root, &tree::leaf_hash("x").to_string());
    assert_eq!(status(&altered), 403);
    // Old larger than the checkpoint: 400; a proof from 0: 400.
    let mut ahead = five.request(&log_key(), 0);
    ahead.old = 6;
    assert_eq!(status(&ahead), 400);
    let mut proof_from_zero = five.request(&log_key(), 0);
    proof_from_zero.proof = vec![five.root()];
    assert_eq!(status(&proof_from_zero), 400);

    // The request's text: parsed, and each malformed form refused as 400.
    let good = witness::request_body(0, &[], &five.request(&log_key(), 0).checkpoint);
    assert_eq!(
        witness::parse_request(good.as_bytes()).unwrap(),
        five.request(&log_key(), 0)
    );
    let note = five.request(&log_key(), 0).checkpoint;
    let many = format!(
        "old 3\n{}\n{note}",
        format!("{}\n", base64_hash(five.root())).repeat(64)
    );
    for bad in [
        format!("old 03\n\n{note}"),
        format!("old -1\n\n{note}"),
        format!("old\n\n{note}"),
        format!("new 3\n\n{note}"),
        format!("old 3\nnot base64!\n\n{note}"),
        format!("old 3\nAAAA\n\n{note}"),
        format!("old 3\n{note}"),
        many,
    ] {
        assert!(
            matches!(
                witness::parse_request(bad.as_bytes()),
                Err(Refusal::BadRequest(_))
            ),
            "{bad}"
        );
    }
    let mut not_a_note = five.request(&log_key(), 0);
    not_a_note.checkpoint = "localhost/relais-trace\n5\n".into();
    assert_eq!(status(&not_a_note), 400);
}

/// A signature line with one bit of its signature flipped.
fn forge(line: &str) -> String {
    use base64::prelude::{BASE64_STANDARD, Engine};
    let (head, sig) = line.trim_end().rsplit_once(' ').unwrap();
    let mut bytes = BASE64_STANDARD.decode(sig).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    format!("{head} {}", BASE64_STANDARD.encode(bytes))
}

fn base64_hash(h: Hash) -> String {
    use base64::prelude::{BASE64_STANDARD, Engine};
    BASE64_STANDARD.encode(h.0)
}

/// A witness server on a free loopback port.
struct Running {
    url: String,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve(w: Witness, state: &std::path::Path) -> Running {
    let service = WitnessService::open(w, state).unwrap();
    let listener = relais_runtime::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(service.serve(listener, shutdown.clone()));
    Running {
        url,
        shutdown,
        task,
    }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn post(url: &str, body: String) -> (u16, Option<String>, String) {
    let r = reqwest::Client::new()
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (status, kind, r.text().await.unwrap())
}

fn temp_state() -> PathBuf {
    std::env::temp_dir().join(format!("relais-witness-{}.json", uuid::Uuid::new_v4()))
}

fn body(r: &AddCheckpoint) -> String {
    witness::request_body(r.old, &r.proof, &r.checkpoint)
}

#[tokio::test]
async fn the_witness_serves_the_protocol_and_its_state_survives_a_restart() {
    let key = witness_key();
    let verifier = WitnessVerifier::parse(&key.verifier_key()).unwrap();
    let path = temp_state();
    let bodies = records("c", 8);
    let (five, eight) = (Mem::of(&bodies[..5]), Mem::of(&bodies));
    let mut forked = bodies.clone();
    forked[0] = r#"{"c":"rewritten"}"#.into();
    let fork = Mem::of(&forked[..5]);

    let running = serve(witness(key.clone()), &path).await;
    let r5 = five.request(&log_key(), 0);
    let (status, _, answer) = post(&running.url, body(&r5)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.starts_with('\u{2014}') && answer.ends_with('\n'),
        "{answer}"
    );
    verifier
        .check(&cosignature::append(&r5.checkpoint, &[answer]))
        .unwrap();
    // Kept before the answer: the file holds it already.
    let kept = relais_trace::witness_server::load_state(&path).unwrap();
    assert_eq!((kept[ORIGIN].size, kept[ORIGIN].root), (5, five.root()));
    let (status, _, _) = post(&running.url, "garbage".into()).await;
    assert_eq!(status, 400);
    running.stop().await;

    // A new process on the same state: it remembers 5 and its root.
    let running = serve(witness(key.clone()), &path).await;
    let (status, kind, size) = post(&running.url, body(&fork.request(&log_key(), 0))).await;
    assert_eq!(
        (status, kind.as_deref(), size.as_str()),
        (409, Some("text/x.tlog.size"), "5\n")
    );
    let (status, _, _) = post(&running.url, body(&fork.request(&log_key(), 5))).await;
    assert_eq!(status, 409, "another tree of the cosigned size");
    let (status, _, _) = post(&running.url, body(&eight.request(&log_key(), 5))).await;
    assert_eq!(status, 200);
    running.stop().await;
    assert_eq!(
        relais_trace::witness_server::load_state(&path).unwrap()[ORIGIN].size,
        8
    );
    // A state file that is not one stops the witness rather than starting it afresh.
    std::fs::write(&path, "{").unwrap();
    assert!(WitnessService::open(witness(key), &path).is_err());
    std::fs::remove_file(&path).unwrap();
}

/// The trace service sending its checkpoints to the witness at `url`.
async fn witnessed_trace(url: &str, key: &WitnessKey) -> Trace {
    Trace::start_with(TraceConfig {
        witnesses: vec![WitnessLink {
            url: url.to_string(),
            key: key.verifier_key(),
        }],
        witness_timeout_seconds: 2,
        ..TraceConfig::default()
    })
    .await
}

fn sign_ins(id: &str) -> Vec<relais_bus::Event> {
    sign_in(
        &SignIn {
            connection_id: id,
            sp_id: "sp-a",
            sub_fs: "fs-1",
            account_id: "acct-1",
        },
        base_time(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_checkpoints_are_cosigned_and_a_rewrite_is_named_against_them() {
    let key = witness_key();
    let verifier = WitnessVerifier::parse(&key.verifier_key()).unwrap();
    let path = temp_state();
    let running = serve(witness(key.clone()), &path).await;
    let mut trace = witnessed_trace(&running.url, &key).await;
    let events = sign_ins("cnx-witnessed");
    for e in &events[..4] {
        trace.record(&[e]).await;
    }
    let first = trace.make_checkpoint().await;
    assert_eq!(first.cosigned_by, vec![NAME.to_string()]);
    verifier.check(&first.note).unwrap();
    checkpoint::open(&first.note, log_key().verifier_key(), ORIGIN).unwrap();

    // The log's record of its witness's cosignatures lost: the witness says where it is
    // (409) and the log proves consistency from there.
    trace
        .sql
        .get()
        .await
        .unwrap()
        .execute("DELETE FROM witness_cosignatures", &[])
        .await
        .unwrap();
    for e in &events[4..] {
        trace.record(&[e]).await;
    }
    let held = trace.make_checkpoint().await;
    assert!(held.tree_size > first.tree_size);
    assert_eq!(held.cosigned_by, vec![NAME.to_string()]);
    let latest = trace
        .client
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latest.note, held.note);
    verifier.check(&latest.note).unwrap();
    let intact = trace.verify_against(&held.note).await;
    assert!(intact.intact, "{intact:?}");
    assert_eq!(intact.cosigned_by, vec![NAME.to_string()]);

    // A forged cosignature on the checkpoint given: refused, naming the witness.
    let line_start = held.note.find('\u{2014}').unwrap();
    let witness_line = held.note[line_start..]
        .lines()
        .find(|l| l.contains(NAME))
        .unwrap()
        .to_string();
    let forged_line = forge(&witness_line);
    let forged = held.note.replace(&witness_line, &forged_line);
    let refused = trace
        .client
        .verify_chain(VerifyChainRequest {
            checkpoint: forged.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains(NAME), "{}", refused.message());

    // A record rewritten in PostgreSQL: named against the witnessed checkpoint.
    trace
        .tamper(&[
            "UPDATE events SET body = replace(body, 'fi-acct-1', 'fi-acct-9') \
                   WHERE seq = 3 AND body LIKE '%fi-acct-1%'",
        ])
        .await;
    let named = trace.verify_against(&held.note).await;
    assert!(!named.intact, "{named:?}");
    assert_eq!(named.broken_at_seq, 3, "{named:?}");
    assert_eq!(named.cosigned_by, vec![NAME.to_string()]);
    // The tree recomputed, the log's own checkpoints and cosignatures removed: the
    // witnessed checkpoint held outside still refuses the log, from its first record on
    // (nothing signed narrows it further).
    recompute_tree(&trace).await;
    {
        let client = trace.sql.get().await.unwrap();
        client
            .execute("DELETE FROM witness_cosignatures", &[])
            .await
            .unwrap();
        client
            .execute("DELETE FROM checkpoints", &[])
            .await
            .unwrap();
    }
    let named = trace.verify_against(&held.note).await;
    assert!(!named.intact, "{named:?}");
    assert_eq!(named.broken_at_seq, 1, "{named:?}");
    assert!(named.reason.contains("checkpoint given"), "{named:?}");

    // The log signs the rewritten tree, of the same size: the witness refuses it (409), so
    // the second tree carries no cosignature; the witness still holds the first one's root.
    let second = trace.make_checkpoint().await;
    assert_eq!(second.tree_size, held.tree_size);
    assert_ne!(second.root_hash, held.root_hash);
    assert!(second.cosigned_by.is_empty(), "{second:?}");
    assert!(matches!(
        verifier.check(&second.note),
        Err(CosignatureError::Missing(_))
    ));
    let kept = relais_trace::witness_server::load_state(&path).unwrap();
    assert_eq!(kept[ORIGIN].root.0.to_vec(), held.root_hash);
    // One more record on the second tree: refused as inconsistent (422), still not cosigned.
    trace.record(&[&sign_ins("cnx-after")[0]]).await;
    let third = trace.make_checkpoint().await;
    assert_eq!(third.tree_size, held.tree_size + 1);
    assert!(third.cosigned_by.is_empty(), "{third:?}");
    trace.stop().await;
    running.stop().await;
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_witness_never_holds_up_the_log_and_is_asked_again() {
    let key = witness_key();
    // A port nothing listens on yet.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let mut trace = witnessed_trace(&url, &key).await;
    let events = sign_ins("cnx-unwitnessed");
    trace.record(&[&events[0], &events[1]]).await;
    let unwitnessed = trace.make_checkpoint().await;
    assert!(unwitnessed.cosigned_by.is_empty());
    // Ingest goes on.
    trace.record(&[&events[2]]).await;

    // The witness comes up: the next checkpoint is cosigned.
    let path = temp_state();
    let service = WitnessService::open(witness(key.clone()), &path).unwrap();
    let listener = relais_runtime::bind(&format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(service.serve(listener, shutdown.clone()));
    let cosigned = trace.make_checkpoint().await;
    assert_eq!(cosigned.cosigned_by, vec![NAME.to_string()]);
    trace.stop().await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_file_needs_each_witness_cosignature_asked_for() {
    use relais_proto::trace::v1::export_case_request::Subject;
    let key = witness_key();
    let path = temp_state();
    let running = serve(witness(key.clone()), &path).await;
    let mut trace = witnessed_trace(&running.url, &key).await;
    let events = sign_ins("cnx-exported");
    trace.record(&events.iter().collect::<Vec<_>>()).await;
    let exported = trace
        .client
        .export_case(ExportCaseRequest {
            case: "TICKET-W".into(),
            reason: "identity theft reported".into(),
            subject: Some(Subject::ConnectionId("cnx-exported".into())),
            ..ExportCaseRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let file = proof_file::parse(&exported.proof_file).unwrap();
    let vkey = log_key().verifier_key().to_string();
    // With the witness's key: verified and cosigned.
    let v = proof_file::verify_witnessed(&file, &vkey, &[key.verifier_key()]).unwrap();
    assert_eq!(v.cosigned_by.len(), 1);
    assert_eq!(v.cosigned_by[0].0, NAME);
    // Another witness's key: its cosignature is missing, named.
    let absent = witness_key().verifier_key();
    match proof_file::verify_witnessed(&file, &vkey, &[absent]) {
        Err(Failure::Cosignature(why)) => assert!(why.contains("no cosignature"), "{why}"),
        other => panic!("a missing cosignature verified: {other:?}"),
    }
    // The cosignature altered: forged, named.
    let line = file
        .checkpoint
        .lines()
        .find(|l| l.contains(NAME))
        .unwrap()
        .to_string();
    let mut forged = file.clone();
    let altered = forge(&line);
    forged.checkpoint = file.checkpoint.replace(&line, &altered);
    match proof_file::verify_witnessed(&forged, &vkey, &[key.verifier_key()]) {
        Err(Failure::Cosignature(why)) => assert!(why.contains("does not verify"), "{why}"),
        other => panic!("a forged cosignature verified: {other:?}"),
    }
    // Without witness keys the log's signature alone is checked, as before.
    proof_file::verify(&forged, &vkey).unwrap();
    trace.stop().await;
    running.stop().await;
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn witnesses_are_configured_by_url_and_cosignature_key_and_bad_ones_are_named() {
    let key = witness_key().verifier_key();
    let link = |url: &str, key: &str| WitnessLink {
        url: url.into(),
        key: key.into(),
    };
    let with = |witnesses: Vec<WitnessLink>| TraceConfig {
        witnesses,
        ..TraceConfig::default()
    };
    let issuer = "http://127.0.0.1:8080";
    let good = with(vec![link("https://witness.example.org/", &key)]);
    good.validate(issuer).unwrap();
    let verifiers = good.witness_verifiers().unwrap();
    assert_eq!(verifiers[0].0, "https://witness.example.org");
    assert_eq!(verifiers[0].1.name(), NAME);
    for (config, field) in [
        (
            with(vec![link("witness.example.org", &key)]),
            "trace.witnesses[0].url",
        ),
        (
            with(vec![link("https://w.example", log_key().verifier_key())]),
            "trace.witnesses[0].key",
        ),
        (
            with(vec![
                link("https://a.example", &key),
                link("https://b.example", &key),
            ]),
            "trace.witnesses[1].key",
        ),
        (
            TraceConfig {
                witness_timeout_seconds: 0,
                ..good.clone()
            },
            "trace.witness_timeout_seconds",
        ),
    ] {
        let err = config.validate(issuer).unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
    // A witness's logs: verifier keys, once each.
    let log = log_key().verifier_key().to_string();
    assert!(Witness::new(witness_key(), &[log.clone(), log]).is_err());
    assert!(Witness::new(witness_key(), &[key]).is_err());
}
