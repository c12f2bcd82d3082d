//! Criterion microbenchmarks of the hub's per-sign-in cryptography: ID token signing
//! (ES256, RS256), verification of an IdP's token against its key set, the per-SP
//! subject (SUB FS), the generation and hashing of codes and tokens, and the offline
//! verification of a proof file (records per second).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relais_jose::{Alg, KeySet, SigningKey};
use relais_oidc_front::domain::secrets::{random_token, sha256, subject_for};
use serde_json::{Map, Value};

/// The claims of a typical ID token.
fn claims() -> Map<String, Value> {
    let mut c = Map::new();
    for (k, v) in [
        ("iss", "http://127.0.0.1:8000"),
        (
            "sub",
            "4f1c2e9a0d7b5c3e8f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6",
        ),
        ("aud", "bench-sp-00042"),
        ("nonce", "n-0S6_WzA2Mj0123456789abcdefghijklmnopqrstu"),
        ("acr", "eidas2"),
        ("sid", "8a1f5c2e-3b4d-4e6f-8a9b-0c1d2e3f4a5b"),
        ("at_hash", "77QmUPtjPfzWtF2AnpK9RQ"),
    ] {
        c.insert(k.into(), Value::from(v));
    }
    for (k, v) in [("exp", 1_900_000_600), ("iat", 1_900_000_000)] {
        c.insert(k.into(), Value::from(v));
    }
    c.insert("amr".into(), Value::from(vec!["pwd", "otp"]));
    c
}

fn keys() -> Option<(SigningKey, SigningKey)> {
    match (
        SigningKey::generate(Alg::Es256),
        SigningKey::generate(Alg::Rs256),
    ) {
        (Ok(es), Ok(rs)) => Some((es, rs)),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot generate keys: {e}");
            None
        }
    }
}

fn id_tokens(c: &mut Criterion) {
    let Some((es, rs)) = keys() else { return };
    let claims = claims();
    let mut g = c.benchmark_group("id_token");
    g.bench_function("sign_es256", |b| {
        b.iter(|| es.sign(black_box(&claims), "JWT"))
    });
    g.bench_function("sign_rs256", |b| {
        b.iter(|| rs.sign(black_box(&claims), "JWT"))
    });
    g.finish();

    // As the bridge holds an IdP's keys: parsed from its published JWKS.
    let jwks = match KeySet::from_signing_keys([&es, &rs]) {
        Ok(set) => set.to_jwks_json(),
        Err(e) => return eprintln!("cannot build the key set: {e}"),
    };
    let idp_keys = match KeySet::from_jwks_json(&jwks) {
        Ok(set) => set,
        Err(e) => return eprintln!("cannot parse the JWKS: {e}"),
    };
    let (Ok(es_token), Ok(rs_token)) = (es.sign(&claims, "JWT"), rs.sign(&claims, "JWT")) else {
        return eprintln!("cannot sign the tokens to verify");
    };
    let mut g = c.benchmark_group("idp_token");
    g.bench_function("verify_es256", |b| {
        b.iter(|| idp_keys.verify(black_box(&es_token)))
    });
    g.bench_function("verify_rs256", |b| {
        b.iter(|| idp_keys.verify(black_box(&rs_token)))
    });
    g.finish();
}

fn secrets(c: &mut Criterion) {
    let key = b"bench-subject-key-0123456789-0123456789";
    let account = "3f2b8c1e-6d4a-4f7e-9b0c-1a2b3c4d5e6f";
    let mut g = c.benchmark_group("secrets");
    g.bench_function("sub_fs_hmac", |b| {
        b.iter(|| {
            subject_for(
                black_box(key),
                black_box(account),
                black_box("bench-sp-00042"),
            )
        })
    });
    g.bench_function("random_token", |b| b.iter(random_token));
    let token = random_token();
    g.bench_function("sha256_token", |b| b.iter(|| sha256(black_box(&token))));
    g.bench_function("code_generate_and_hash", |b| {
        b.iter(|| {
            let code = random_token();
            (sha256(&code), code)
        })
    });
    g.finish();
}

/// Records in the benchmark's proof file: every record of a log of that many.
const PROOF_FILE_RECORDS: u64 = 100_000;

/// A proof file of every record of a log of `n` records, its text, and the verifier key.
fn proof_file(n: u64) -> Option<(String, String)> {
    use relais_trace::checkpoint::CheckpointKey;
    use relais_trace::proof_file::{self, ProofFile, ProvenRecord};
    use relais_trace::tree::{self, Frontier, Known};
    let origin = "bench.example/trace";
    let key = CheckpointKey::development(origin).ok()?;
    let (mut frontier, mut known, mut bodies) = (Frontier::empty(), Known::default(), Vec::new());
    for i in 0..n {
        // About the size of a sign-in's record.
        let body = format!(
            r#"{{"id":"{i:032}","kind":"connection.code_issued","occurred_at":"2026-12-03T14:00:00Z","source":"oidc-front","payload":{{"connection_id":"c-{i}","sp_id":"sp-a","idp_id":"idp-a","acr":"eidas2","sub_fs":"{i:064}","source_ip":"203.0.113.10","source_port":50000}}}}"#
        );
        for (idx, h) in frontier.push(tree::leaf_hash(&body)).ok()? {
            known.0.insert(idx, h);
        }
        bodies.push(body);
    }
    let mut records = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let proof = tree::inclusion(i as u64, n).ok()?.run(&known).ok()?;
        records.push(ProvenRecord {
            leaf_index: i as u64,
            body,
            proof: proof_file::encode(&proof),
        });
    }
    let file = ProofFile {
        format: proof_file::FORMAT.into(),
        origin: origin.into(),
        case: "BENCH".into(),
        exported_at: String::new(),
        selection: String::new(),
        truncated: false,
        checkpoint: key.sign(n, frontier.root().ok()?).ok()?,
        records,
        consistency: None,
    };
    Some((
        serde_json::to_string(&file).ok()?,
        key.verifier_key().to_string(),
    ))
}

fn proof_files(c: &mut Criterion) {
    use relais_trace::proof_file;
    let Some((text, vkey)) = proof_file(PROOF_FILE_RECORDS) else {
        eprintln!("no proof file built");
        return;
    };
    let mut g = c.benchmark_group("proof_file");
    g.sample_size(10);
    g.throughput(Throughput::Elements(PROOF_FILE_RECORDS));
    // What `relais trace verify` does: read the JSON, then check every record.
    g.bench_function("parse_and_verify_100k_records", |b| {
        b.iter(|| {
            let file = proof_file::parse(black_box(&text)).ok();
            file.map(|f| proof_file::verify(&f, &vkey).is_ok())
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = micro;
    config = config();
    targets = id_tokens, secrets, proof_files
}
criterion_main!(micro);
