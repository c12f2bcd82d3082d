#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The log's tree, proofs and checkpoints, checked against a second implementation of RFC
//! 6962 (`ct-merkle`) and the signed-note verifier.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof};
use relais_proto::trace::v1::{
    GetCheckpointRequest, GetConsistencyProofRequest, GetInclusionProofRequest,
    get_inclusion_proof_request::Record,
};
use relais_trace::checkpoint::{self, CheckpointKey};
use relais_trace::tree::{self, Frontier, Hash, Known};
use sha2_ct::Sha256;

use crate::common::{SignIn, Trace, base_time, sign_in};

type CtTree = MemoryBackedTree<Sha256, Vec<u8>>;

fn bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

fn ct_tree(leaves: &[Vec<u8>]) -> CtTree {
    let mut t = CtTree::new();
    for l in leaves {
        t.push(l.clone());
    }
    t
}

#[test]
fn roots_and_proofs_are_ct_merkles_for_every_size_up_to_70() {
    let leaves: Vec<Vec<u8>> = (0..70)
        .map(|i| format!("record {i}").into_bytes())
        .collect();
    let mut frontier = Frontier::empty();
    let mut known = Known::default();
    let mut ct = CtTree::new();
    let mut roots = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let body = String::from_utf8(leaf.clone()).unwrap();
        for (idx, h) in frontier.push(tree::leaf_hash(&body)).unwrap() {
            assert!(
                known.0.insert(idx, h).is_none(),
                "index {idx} written twice"
            );
        }
        ct.push(leaf.clone());
        let size = i as u64 + 1;
        let root = frontier.root().unwrap();
        assert_eq!(root.0.as_slice(), ct.root().as_bytes().as_slice(), "{size}");
        // The root again from the stored hashes alone, as proofs are served.
        assert_eq!(tree::root_of(size).run(&known).unwrap(), root);
        roots.push(root);
    }
    for size in 1..=leaves.len() as u64 {
        let ct = ct_tree(&leaves[..size as usize]);
        let root = roots[size as usize - 1];
        for index in 0..size {
            let proof = tree::inclusion(index, size).unwrap().run(&known).unwrap();
            let theirs = ct.prove_inclusion(index as usize);
            assert_eq!(
                bytes(&proof),
                theirs.as_bytes(),
                "inclusion {index} in {size}"
            );
            let ours = InclusionProof::<Sha256>::try_from_bytes(bytes(&proof)).unwrap();
            ct.root()
                .verify_inclusion(&leaves[index as usize], index, &ours)
                .unwrap();
            let leaf = tree::leaf_hash(std::str::from_utf8(&leaves[index as usize]).unwrap());
            tree::check_inclusion(&proof, size, root, index, leaf).unwrap();
            // Another record at that place does not verify.
            let other = tree::leaf_hash("another record");
            assert!(tree::check_inclusion(&proof, size, root, index, other).is_err());
        }
        for old in 1..=size {
            let proof = tree::consistency(old, size).unwrap().run(&known).unwrap();
            let theirs = ct.prove_consistency((size - old) as usize);
            assert_eq!(
                bytes(&proof),
                theirs.as_bytes(),
                "consistency {old} → {size}"
            );
            let ours = ConsistencyProof::<Sha256>::try_from_bytes(bytes(&proof)).unwrap();
            let old_ct = ct_tree(&leaves[..old as usize]);
            ct.root().verify_consistency(&old_ct.root(), &ours).unwrap();
            let old_root = roots[old as usize - 1];
            tree::check_consistency(&proof, size, root, old, old_root).unwrap();
            if old > 1 {
                // Another old tree does not verify.
                assert!(tree::check_consistency(&proof, size, root, old, roots[0]).is_err());
            }
        }
    }
    assert!(tree::inclusion(3, 3).is_err());
    assert!(tree::consistency(0, 3).is_err());
    assert!(tree::consistency(4, 3).is_err());
}

#[test]
fn a_checkpoint_verifies_with_its_public_key_and_not_with_another() {
    let origin = "relais.example/trace";
    // Many keys: their base64 holds '+' now and then, as the format's separator does.
    for _ in 0..64 {
        let (private, public) = checkpoint::generate_key(origin).unwrap();
        let key = CheckpointKey::parse(private.expose(), origin).unwrap();
        assert_eq!(key.verifier_key(), public);
    }
    let (private, public) = checkpoint::generate_key(origin).unwrap();
    let key = CheckpointKey::parse(private.expose(), origin).unwrap();
    let root = tree::leaf_hash("a root");
    let note = key.sign(42, root).unwrap();
    let mut lines = note.lines();
    assert_eq!(lines.next(), Some(origin));
    assert_eq!(lines.next(), Some("42"));
    assert_eq!(lines.next(), Some(root.to_string().as_str()));
    assert_eq!(lines.next(), Some(""));
    assert!(lines.next().unwrap().starts_with(&format!("— {origin} ")));
    let opened = checkpoint::open(&note, &public, origin).unwrap();
    assert_eq!((opened.size, opened.root), (42, root));

    // The signed-note library's own verifier agrees.
    let verifier = signed_note::StandardVerifier::new(&public).unwrap();
    let parsed = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
    parsed
        .verify(&signed_note::VerifierList::new(vec![Box::new(verifier)]))
        .unwrap();

    // Another key of the same name, an altered size, another origin: refused.
    let (_, other) = checkpoint::generate_key(origin).unwrap();
    assert!(checkpoint::open(&note, &other, origin).is_err());
    let altered = note.replacen("\n42\n", "\n43\n", 1);
    assert!(checkpoint::open(&altered, &public, origin).is_err());
    assert!(checkpoint::open(&note, &public, "elsewhere/trace").is_err());
    // A key is named after its log.
    assert!(CheckpointKey::parse(private.expose(), "elsewhere/trace").is_err());
    assert!(CheckpointKey::parse("PRIVATE+KEY+nonsense", origin).is_err());
}

/// 13 records stored through the service, in batches of 1 to 5.
async fn thirteen_records() -> Trace {
    let trace = Trace::start().await;
    let mut events = Vec::new();
    for i in 0..2 {
        events.extend(sign_in(
            &SignIn {
                connection_id: &format!("cnx-proofs-{i}"),
                sp_id: "sp-a",
                sub_fs: "fs-1",
                account_id: "acct-1",
            },
            base_time(),
        ));
    }
    events.truncate(13);
    let mut rest: &[relais_bus::Event] = &events;
    for n in [1, 5, 2, 4, 1] {
        let (batch, after) = rest.split_at(n);
        trace.record(&batch.iter().collect::<Vec<_>>()).await;
        rest = after;
    }
    trace
}

#[tokio::test]
async fn the_services_proofs_verify_with_ct_merkle() {
    let mut trace = thirteen_records().await;
    let bodies: Vec<Vec<u8>> = trace
        .bodies()
        .await
        .into_iter()
        .map(String::into_bytes)
        .collect();
    assert_eq!(bodies.len(), 13);
    let checkpoint = trace.make_checkpoint().await;
    assert_eq!(checkpoint.tree_size, 13);
    let full = ct_tree(&bodies);
    assert_eq!(checkpoint.root_hash, full.root().as_bytes().as_slice());
    for size in 1..=13u64 {
        let ct = ct_tree(&bodies[..size as usize]);
        for index in 0..size {
            let p = trace
                .client
                .get_inclusion_proof(GetInclusionProofRequest {
                    record: Some(Record::LeafIndex(index)),
                    tree_size: size,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(p.root_hash, ct.root().as_bytes().as_slice());
            assert_eq!(p.body.as_bytes(), bodies[index as usize]);
            let proof = InclusionProof::<Sha256>::try_from_bytes(p.hashes.concat()).unwrap();
            ct.root()
                .verify_inclusion(&bodies[index as usize], index, &proof)
                .unwrap();
            // The same record asked by its event id.
            let by_id = trace
                .client
                .get_inclusion_proof(GetInclusionProofRequest {
                    record: Some(Record::EventId(p.event_id.clone())),
                    tree_size: size,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(by_id, p);
        }
        for old in 1..=size {
            let c = trace
                .client
                .get_consistency_proof(GetConsistencyProofRequest {
                    old_size: old,
                    new_size: size,
                })
                .await
                .unwrap()
                .into_inner();
            let proof = ConsistencyProof::<Sha256>::try_from_bytes(c.hashes.concat()).unwrap();
            let old_ct = ct_tree(&bodies[..old as usize]);
            assert_eq!(c.old_root_hash, old_ct.root().as_bytes().as_slice());
            ct.root()
                .verify_consistency(&old_ct.root(), &proof)
                .unwrap();
        }
    }
    // Against the latest checkpoint when no size is given.
    let latest = trace
        .client
        .get_inclusion_proof(GetInclusionProofRequest {
            record: Some(Record::LeafIndex(4)),
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latest.tree_size, 13);
    // Beyond the log: refused.
    let beyond = trace
        .client
        .get_inclusion_proof(GetInclusionProofRequest {
            record: Some(Record::LeafIndex(1)),
            tree_size: 14,
        })
        .await
        .unwrap_err();
    assert_eq!(beyond.code(), tonic::Code::FailedPrecondition, "{beyond:?}");
    trace.stop().await;
}

#[tokio::test]
async fn the_latest_checkpoint_is_signed_by_the_services_key_only() {
    let mut trace = thirteen_records().await;
    let made = trace.make_checkpoint().await;
    // Made again without growth: the same checkpoint.
    assert_eq!(trace.make_checkpoint().await, made);
    let latest = trace
        .client
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latest, made);
    let config = relais_trace::TraceConfig::default();
    let key = config.key().unwrap();
    assert_eq!(latest.verifier_key, key.verifier_key());
    let opened = checkpoint::open(&latest.note, key.verifier_key(), &config.origin).unwrap();
    assert_eq!(opened.size, 13);
    assert_eq!(opened.root.0.as_slice(), latest.root_hash.as_slice());
    let (_, other) = checkpoint::generate_key(&config.origin).unwrap();
    assert!(checkpoint::open(&latest.note, &other, &config.origin).is_err());
    trace.stop().await;
}

#[test]
fn the_checkpoint_key_is_the_one_set_the_files_or_on_loopback_the_development_one() {
    let origin = "relais.example/trace";
    let (private, public) = checkpoint::generate_key(origin).unwrap();
    let config = relais_trace::TraceConfig {
        origin: origin.into(),
        ..relais_trace::TraceConfig::default()
    };
    // No key: the development one, on loopback only.
    config.validate("http://127.0.0.1:8000").unwrap();
    let err = config.validate("https://relais.example").unwrap_err();
    assert!(err.to_string().contains("trace.checkpoint_key"), "{err}");
    let dev = config.key().unwrap();
    assert_ne!(dev.verifier_key(), public);
    // Set inline.
    let inline = relais_trace::TraceConfig {
        checkpoint_key: private.clone(),
        ..config.clone()
    };
    inline.validate("https://relais.example").unwrap();
    assert_eq!(inline.key().unwrap().verifier_key(), public);
    // In a file, read at start.
    let file = std::env::temp_dir().join(format!("relais-key-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, format!("{}\n", private.expose())).unwrap();
    let in_file = relais_trace::TraceConfig {
        checkpoint_key_file: file.display().to_string(),
        ..config.clone()
    };
    in_file.validate("https://relais.example").unwrap();
    assert_eq!(in_file.key().unwrap().verifier_key(), public);
    std::fs::remove_file(&file).unwrap();
    let err = in_file.key().unwrap_err();
    assert!(
        err.to_string().contains("trace.checkpoint_key_file"),
        "{err}"
    );
    // Both, a bad key, a key of another log, a bad origin, no interval: named.
    for (bad, field) in [
        (
            relais_trace::TraceConfig {
                checkpoint_key_file: "/k".into(),
                ..inline.clone()
            },
            "trace.checkpoint_key_file",
        ),
        (
            relais_trace::TraceConfig {
                checkpoint_key: relais_config::Secret::new("PRIVATE+KEY+x"),
                ..config.clone()
            },
            "trace.checkpoint_key",
        ),
        (
            relais_trace::TraceConfig {
                origin: "elsewhere.example/trace".into(),
                ..inline.clone()
            },
            "trace.checkpoint_key",
        ),
        (
            relais_trace::TraceConfig {
                origin: "two words".into(),
                ..config.clone()
            },
            "trace.origin",
        ),
        (
            relais_trace::TraceConfig {
                checkpoint_interval_seconds: 0,
                ..config.clone()
            },
            "trace.checkpoint_interval_seconds",
        ),
    ] {
        let err = bad.validate("http://127.0.0.1:8000").unwrap_err();
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    // The key never prints.
    assert!(!format!("{inline:?}").contains(private.expose()));
}
