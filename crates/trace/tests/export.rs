#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The export of a case as a proof file, from the real service after sign-ins, verified
//! offline with the log's verifier key alone; the export is itself recorded.

use relais_proto::trace::v1::{
    ExportCaseRequest, ExportCaseResponse, GetCheckpointRequest, SubjectAt,
    export_case_request::Subject,
};
use relais_trace::proof_file::{self, Failure};

use crate::common::{BROWSER_IP, SignIn, Trace, base_time, rfc3339, sign_in};

fn request(case: &str, subject: Subject) -> ExportCaseRequest {
    ExportCaseRequest {
        case: case.into(),
        reason: "identity theft reported".into(),
        subject: Some(subject),
        ..ExportCaseRequest::default()
    }
}

async fn export(trace: &mut Trace, r: ExportCaseRequest) -> ExportCaseResponse {
    trace.client.export_case(r).await.unwrap().into_inner()
}

fn kinds(file: &proof_file::ProofFile) -> Vec<String> {
    file.records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            v["kind"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_case_verifies_offline_and_its_export_is_recorded() {
    let mut trace = Trace::start().await;
    let base = base_time();
    let who = |c, a| SignIn {
        connection_id: c,
        sp_id: "sp-a",
        sub_fs: "fs-alice",
        account_id: a,
    };
    let alice1 = sign_in(&who("c-alice-1", "acc-alice"), base);
    let alice2 = sign_in(
        &who("c-alice-2", "acc-alice"),
        base + time::Duration::hours(1),
    );
    let bob = sign_in(
        &SignIn {
            connection_id: "c-bob",
            sp_id: "sp-b",
            sub_fs: "fs-bob",
            account_id: "acc-bob",
        },
        base,
    );
    let all: Vec<_> = alice1.iter().chain(&alice2).chain(&bob).collect();
    trace.record(&all).await;
    let vkey = trace
        .client
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .verifier_key;

    // A case is required.
    let refused = trace
        .client
        .export_case(request(" ", Subject::AccountId("acc-alice".into())))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let r = export(
        &mut trace,
        request("TICKET-7", Subject::AccountId("acc-alice".into())),
    )
    .await;
    assert_eq!(r.connections, 2);
    // Alice's 14 records and the export's own; none of Bob's.
    assert_eq!(r.records, 15);
    assert!(!r.truncated);
    let file = proof_file::parse(&r.proof_file).unwrap();
    let v = proof_file::verify(&file, &vkey).unwrap();
    assert_eq!(v.records, 15);
    assert_eq!(v.case, "TICKET-7");
    assert!(!r.proof_file.contains("acc-bob"));
    let last: serde_json::Value = serde_json::from_str(&file.records[14].body).unwrap();
    assert_eq!(last["kind"], "trace.case_exported");
    assert_eq!(last["id"], r.export_event_id.as_str());
    assert_eq!(last["payload"]["case"], "TICKET-7");
    assert_eq!(last["payload"]["reason"], "identity theft reported");
    assert!(!last["payload"]["operator"].as_str().unwrap().is_empty());
    // The export is a record of the log, in the store and proven by the checkpoint.
    assert_eq!(
        trace
            .stored_count(&[r.export_event_id.parse().unwrap()])
            .await,
        1
    );
    assert_eq!(v.checkpoint.size, 22);
    assert!(trace.verify().await.intact);

    // Another selection of the same case: its earlier export is in the file too.
    let r2 = export(
        &mut trace,
        request(
            "TICKET-7",
            Subject::SubFs(SubjectAt {
                partner_id: "sp-b".into(),
                sub: "fs-bob".into(),
            }),
        ),
    )
    .await;
    let file2 = proof_file::parse(&r2.proof_file).unwrap();
    proof_file::verify(&file2, &vkey).unwrap();
    let exports = kinds(&file2)
        .iter()
        .filter(|k| *k == "trace.case_exported")
        .count();
    assert_eq!((r2.records, exports), (9, 2));
    // Another case does not see this one's exports.
    let r3 = export(
        &mut trace,
        request("CASE-other", Subject::ConnectionId("c-bob".into())),
    )
    .await;
    assert_eq!(r3.records, 8);

    // By address in a window: the first hour holds Alice's first sign-in and Bob's.
    let mut by_ip = request("TICKET-8", Subject::SourceIp(BROWSER_IP.into()));
    by_ip.from = rfc3339(base);
    by_ip.to = rfc3339(base + time::Duration::minutes(30));
    let r4 = export(&mut trace, by_ip).await;
    assert_eq!(r4.connections, 2);
    proof_file::verify(&proof_file::parse(&r4.proof_file).unwrap(), &vkey).unwrap();
    // By SUB FI at its IdP, bounded to one connection.
    let mut by_fi = request(
        "TICKET-9",
        Subject::SubFi(SubjectAt {
            partner_id: "idp-a".into(),
            sub: "fi-acc-alice".into(),
        }),
    );
    by_fi.limit = 1;
    let r5 = export(&mut trace, by_fi).await;
    assert_eq!((r5.connections, r5.truncated), (1, true));

    // A record rewritten in PostgreSQL: the file exported after names it.
    trace
        .tamper(&[
            "UPDATE events SET body = replace(body, 'fs-bob', 'fs-eve') \
                   WHERE seq = (SELECT min(seq) FROM events WHERE connection_id = 'c-bob' \
                   AND body LIKE '%fs-bob%')",
        ])
        .await;
    let r6 = export(
        &mut trace,
        request("TICKET-10", Subject::ConnectionId("c-bob".into())),
    )
    .await;
    let file6 = proof_file::parse(&r6.proof_file).unwrap();
    match proof_file::verify(&file6, &vkey) {
        Err(Failure::Record { reason, .. }) => assert!(reason.contains("altered"), "{reason}"),
        other => panic!("a rewritten record verified: {other:?}"),
    }
    trace.stop().await;
}
