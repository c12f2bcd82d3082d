//! `relais admin …`: operator actions over the services' gRPC APIs (as the operator
//! identity: `grpc.cert_file` with `{service}` = `operator`), and the deployment's
//! certificates (`pki`).

use std::path::{Path, PathBuf};

use relais_runtime::{LocalServices, Peer, Role, pki};

use relais_bus::events::PartnerStatus;
use relais_proto::oidc_front::v1 as front;
use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_proto::registry::v1 as reg;
use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_proto::support::v1 as support;
use relais_proto::support::v1::support_client::SupportClient;
use relais_proto::trace::v1 as trace;
use relais_proto::trace::v1::trace_client::TraceClient;

use relais_trace::proof_file;

use crate::RelaisConfig;

pub const USAGE: &str = "relais admin suspend-sp <client_id> <reason>
relais admin reactivate-sp <client_id> <reason>
relais admin suspend-idp <idp_id> <reason>
relais admin reactivate-idp <idp_id> <reason>
relais admin rotate-secret <client_id> [overlap_seconds]   (prints the new secret once)
relais admin blocks
relais admin unblock <client:ID | client:ID@ip:ADDRESS | ip:ADDRESS>
relais admin rotate-keys                           (new signing keys, published before they sign)
relais admin pki init [--dir DIR]                  (a CA and every service's certificate)
relais admin pki issue <service> [--dir DIR]       (renews one service's certificate)
relais admin pki issue operator <name> [--dir DIR] (operator.pem for relais admin)
relais admin checkpoint                            (signs a checkpoint of the proof store now; prints it)
relais admin verify-log [CHECKPOINT_FILE]          (the proof store recomputed; against a kept checkpoint too)
relais admin checkpoint-key FILE                   (a new key signing the proof store's checkpoints)
relais admin purge [--dry-run]                     (the proof store's retention purge now; prints what it removed)
relais admin db-roles                              (each service's PostgreSQL role and schema, over database.admin_url)
relais admin export-case <case> <SELECTION> --out FILE [--reason WORDS] [--from T] [--to T] [--limit N]
    SELECTION: connection:ID | account:ID | sub-fi:IDP:SUB | sub-fs:SP:SUB | ip:ADDRESS
    (the case's proof file; the export is recorded; `relais trace verify` checks the file)
relais admin extend-case FILE --out FILE           (the file with a consistency proof to the latest checkpoint)
relais admin suspend-account (--account ID | --idp IDP --sub-fi SUB | --sp CLIENT --sub-fs SUB)
    --case CASE --reason TEXT --proof-file FILE
    (identity theft: the account suspended at every SP, then the case's proof file and a support ticket)
relais admin lift-account-suspension --account ID --case CASE --reason TEXT
DIR defaults to the directory of grpc.ca_file.";

/// The schemas of the services that keep data, each its service's role's own.
const SCHEMAS: [&str; 4] = [
    relais_registry::SCHEMA,
    relais_oidc_front::SCHEMA,
    relais_trace::SCHEMA,
    relais_support::SCHEMA,
];

/// Days a CA, a service's and an operator's certificate are valid.
const CA_DAYS: i64 = 10 * 365;
const SERVICE_DAYS: i64 = 365;
const OPERATOR_DAYS: i64 = 90;

/// Runs one operator command; the answer is printed, errors returned as text.
pub async fn run(config: &RelaisConfig, args: &[String]) -> Result<(), String> {
    let arg = |i: usize| -> Result<&str, String> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("missing argument\n{USAGE}"))
    };
    if arg(0)? == "pki" {
        return run_pki(config, &args[1..]);
    }
    if arg(0)? == "checkpoint-key" {
        return write_checkpoint_key(config, Path::new(arg(1)?));
    }
    if arg(0)? == "db-roles" {
        config.database.validate().map_err(|e| e.to_string())?;
        let done = relais_runtime::provision_roles(&config.database, &SCHEMAS)
            .await
            .map_err(|e| e.to_string())?;
        for line in done {
            println!("{line}");
        }
        return Ok(());
    }
    let links = LocalServices::new(&config.grpc).for_service(Role::Operator);
    let registry = || -> Result<RegistryClient<relais_runtime::GrpcChannel>, String> {
        Ok(RegistryClient::new(
            links
                .channel(Role::Registry, &config.oidc_front.registry_url)
                .map_err(|e| e.to_string())?,
        ))
    };
    let front = || -> Result<OidcFrontClient<relais_runtime::GrpcChannel>, String> {
        Ok(OidcFrontClient::new(
            links
                .channel(Role::OidcFront, &config.gateway.oidc_front_url)
                .map_err(|e| e.to_string())?,
        ))
    };
    let proof_store = || -> Result<TraceClient<relais_runtime::GrpcChannel>, String> {
        Ok(TraceClient::new(
            links
                .channel(Role::Trace, &config.gateway.trace_url)
                .map_err(|e| e.to_string())?,
        ))
    };
    let status = |s: tonic::Status| format!("{}: {}", s.code(), s.message());
    let set = |id: &str, reason: &str, suspend: bool| reg::SetStatusRequest {
        id: id.to_string(),
        status: if suspend {
            PartnerStatus::Suspended
        } else {
            PartnerStatus::Active
        }
        .to_proto(),
        reason: reason.to_string(),
    };
    match arg(0)? {
        "suspend-account" => {
            let support = SupportClient::new(
                links
                    .channel(Role::Support, &config.gateway.support_url)
                    .map_err(|e| e.to_string())?,
            );
            return suspend_account(&args[1..], front()?, proof_store()?, support).await;
        }
        "lift-account-suspension" => {
            return lift_account_suspension(&args[1..], front()?).await;
        }
        cmd @ ("suspend-sp" | "reactivate-sp") => {
            let sp = registry()?
                .set_service_provider_status(set(arg(1)?, arg(2)?, cmd == "suspend-sp"))
                .await
                .map_err(status)?
                .into_inner();
            println!("{} is now {}", sp.client_id, status_name(sp.status));
        }
        cmd @ ("suspend-idp" | "reactivate-idp") => {
            let idp = registry()?
                .set_identity_provider_status(set(arg(1)?, arg(2)?, cmd == "suspend-idp"))
                .await
                .map_err(status)?
                .into_inner();
            println!("{} is now {}", idp.id, status_name(idp.status));
        }
        "rotate-secret" => {
            let overlap = match args.get(2) {
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("overlap_seconds must be a number: {v}"))?,
                None => 7 * 24 * 3600,
            };
            let r = registry()?
                .rotate_client_secret(reg::RotateClientSecretRequest {
                    client_id: arg(1)?.to_string(),
                    overlap_seconds: overlap,
                })
                .await
                .map_err(status)?
                .into_inner();
            println!("client_secret: {}", r.client_secret);
            println!("valid until: {}", r.expires_at);
            println!("previous secret valid until: {}", r.previous_expires_at);
            println!("Deliver it on another channel than the client_id; it is not kept.");
        }
        "blocks" => {
            let blocks = front()?
                .list_blocks(front::Empty {})
                .await
                .map_err(status)?
                .into_inner()
                .blocks;
            if blocks.is_empty() {
                println!("no block in force");
            }
            for b in blocks {
                println!(
                    "{}  until {}  (block #{})",
                    b.subject, b.blocked_until, b.blocks
                );
            }
        }
        "unblock" => {
            front()?
                .clear_block(front::ClearBlockRequest {
                    subject: arg(1)?.to_string(),
                })
                .await
                .map_err(status)?;
            println!("{} unblocked", arg(1)?);
        }
        "checkpoint" => {
            let c = proof_store()?
                .make_checkpoint(trace::MakeCheckpointRequest {})
                .await
                .map_err(status)?
                .into_inner();
            print!("{}", c.note);
        }
        "verify-log" => {
            let checkpoint = match args.get(1) {
                Some(file) => std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?,
                None => String::new(),
            };
            let v = proof_store()?
                .verify_chain(trace::VerifyChainRequest { checkpoint })
                .await
                .map_err(status)?
                .into_inner();
            if !v.intact {
                return Err(format!(
                    "the log is broken at record {}: {}",
                    v.broken_at_seq, v.reason
                ));
            }
            println!(
                "intact: {} records, {} checkpoints checked",
                v.events, v.checkpoints_checked
            );
            if v.purged_up_to_seq > 0 {
                println!(
                    "purged up to seq {} (retention): verified from the checkpoint at that cut",
                    v.purged_up_to_seq
                );
            }
            for witness in &v.cosigned_by {
                println!("the checkpoint given is cosigned by the witness {witness}");
            }
        }
        "purge" => {
            let dry_run = match args.get(1).map(String::as_str) {
                None => false,
                Some("--dry-run") => true,
                Some(other) => {
                    return Err(format!("purge takes only --dry-run, not {other}\n{USAGE}"));
                }
            };
            let r = proof_store()?
                .purge(trace::PurgeRequest { dry_run })
                .await
                .map_err(status)?
                .into_inner();
            let root = relais_trace::tree::to_hash(&r.checkpoint_root)
                .map(|h| h.to_string())
                .unwrap_or_default();
            println!(
                "retention {} months: records received before {} are past it",
                r.retention_months, r.older_than
            );
            println!(
                "{}{} records, {} connection summaries removed, {} rebuilt from their records kept",
                if r.dry_run { "would purge " } else { "purged " },
                r.records,
                r.connections_removed,
                r.connections_rebuilt
            );
            if r.purged_up_to_seq > 0 {
                println!(
                    "records up to seq {} {}; the log is verified from the checkpoint of {} records, root {root}",
                    r.purged_up_to_seq,
                    if r.dry_run {
                        "would be gone"
                    } else {
                        "are gone"
                    },
                    r.checkpoint_size
                );
            }
            if !r.purge_event_id.is_empty() {
                println!("the purge is record {}", r.purge_event_id);
            }
        }
        "export-case" => {
            let (request, out) = export_request(&args[1..])?;
            let r = proof_store()?
                .export_case(request)
                .await
                .map_err(status)?
                .into_inner();
            write_new(Path::new(&out), &r.proof_file)?;
            println!(
                "{out}: {} records of {} connections{}; the export is record {}",
                r.records,
                r.connections,
                if r.truncated {
                    " (bounded: more matched)"
                } else {
                    ""
                },
                r.export_event_id
            );
        }
        "extend-case" => {
            let (input, out) = match args.get(1..) {
                Some([input, flag, out]) if flag == "--out" => (input, out),
                _ => return Err(format!("extend-case needs FILE --out FILE\n{USAGE}")),
            };
            let text = std::fs::read_to_string(input).map_err(|e| format!("{input}: {e}"))?;
            let mut file = proof_file::parse(&text).map_err(|e| format!("{input}: {e}"))?;
            let old = proof_file::checkpoint_size(&file.checkpoint)
                .map_err(|e| format!("{input}: {e}"))?;
            let mut client = proof_store()?;
            let latest = client
                .get_checkpoint(trace::GetCheckpointRequest {})
                .await
                .map_err(status)?
                .into_inner();
            let proof = client
                .get_consistency_proof(trace::GetConsistencyProofRequest {
                    old_size: old,
                    new_size: latest.tree_size,
                })
                .await
                .map_err(status)?
                .into_inner();
            let hashes = proof
                .hashes
                .iter()
                .map(|h| relais_trace::tree::to_hash(h))
                .collect::<Option<Vec<_>>>()
                .ok_or("the proof store sent a hash that is not 32 bytes")?;
            file.consistency = Some(proof_file::Consistency {
                checkpoint: latest.note,
                proof: proof_file::encode(&hashes),
            });
            let json = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
            write_new(Path::new(out), &json)?;
            println!(
                "{out}: the file's tree of {old} records extended to the signed tree of {}",
                latest.tree_size
            );
        }
        "rotate-keys" => {
            let keys = front()?
                .rotate_keys(front::Empty {})
                .await
                .map_err(status)?
                .into_inner()
                .keys;
            for k in keys {
                println!(
                    "{} {}: published now, signs from {}",
                    k.alg, k.kid, k.signs_from
                );
                if !k.replaced_kids.is_empty() {
                    println!(
                        "  replaces {} (published until {})",
                        k.replaced_kids.join(", "),
                        k.replaced_retire_at
                    );
                }
            }
        }
        other => return Err(format!("unknown admin command {other}\n{USAGE}")),
    }
    Ok(())
}

/// `export-case <case> <SELECTION> --out FILE [--reason …] [--from …] [--to …] [--limit …]`.
fn export_request(args: &[String]) -> Result<(trace::ExportCaseRequest, String), String> {
    use trace::export_case_request::Subject;
    let mut request = trace::ExportCaseRequest::default();
    let (mut words, mut out) = (Vec::new(), None);
    let mut i = 0;
    while i < args.len() {
        let value = || {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| format!("{} needs a value\n{USAGE}", args[i]))
        };
        match args[i].as_str() {
            "--out" => out = Some(value()?),
            "--reason" => request.reason = value()?,
            "--from" => request.from = value()?,
            "--to" => request.to = value()?,
            "--limit" => {
                let v = value()?;
                request.limit = v
                    .parse()
                    .map_err(|_| format!("--limit must be a number: {v}"))?;
            }
            word => {
                words.push(word.to_string());
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let [case, selection] = words.as_slice() else {
        return Err(format!("export-case needs a case and a selection\n{USAGE}"));
    };
    let out = out.ok_or_else(|| format!("export-case needs --out FILE\n{USAGE}"))?;
    let at = |rest: &str| -> Result<trace::SubjectAt, String> {
        let (partner, sub) = rest
            .split_once(':')
            .ok_or_else(|| format!("{selection}: give PARTNER:SUB"))?;
        Ok(trace::SubjectAt {
            partner_id: partner.to_string(),
            sub: sub.to_string(),
        })
    };
    let (kind, rest) = selection
        .split_once(':')
        .ok_or_else(|| format!("unknown selection {selection}\n{USAGE}"))?;
    request.subject = Some(match kind {
        "connection" => Subject::ConnectionId(rest.to_string()),
        "account" => Subject::AccountId(rest.to_string()),
        "sub-fi" => Subject::SubFi(at(rest)?),
        "sub-fs" => Subject::SubFs(at(rest)?),
        "ip" => Subject::SourceIp(rest.to_string()),
        _ => return Err(format!("unknown selection {selection}\n{USAGE}")),
    });
    request.case = case.clone();
    Ok((request, out))
}

/// `--name value` pairs; a name given twice or without its value is refused.
fn flags(
    args: &[String],
    known: &[&str],
) -> Result<std::collections::HashMap<String, String>, String> {
    let mut out = std::collections::HashMap::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown option {name}\n{USAGE}"));
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?;
        if out.insert(name.clone(), value.clone()).is_some() {
            return Err(format!("{name} is given twice"));
        }
    }
    Ok(out)
}

type Channel = relais_runtime::GrpcChannel;

/// `suspend-account`: the one call that suspends the account, then the case's proof file
/// and its ticket. The suspension is the safe state: if what follows fails, it stays,
/// and the command says what is left to do and fails.
async fn suspend_account(
    args: &[String],
    mut front_client: OidcFrontClient<Channel>,
    mut proof_store: TraceClient<Channel>,
    mut support_client: SupportClient<Channel>,
) -> Result<(), String> {
    use front::suspend_account_request::Account;
    let f = flags(
        args,
        &[
            "--account",
            "--idp",
            "--sub-fi",
            "--sp",
            "--sub-fs",
            "--case",
            "--reason",
            "--proof-file",
        ],
    )?;
    let get = |n: &str| f.get(n).cloned();
    let subject = |partner: String, sub: String| front::SubjectOf {
        partner_id: partner,
        sub,
    };
    let account = match (
        get("--account"),
        get("--idp"),
        get("--sub-fi"),
        get("--sp"),
        get("--sub-fs"),
    ) {
        (Some(id), None, None, None, None) => Account::AccountId(id),
        (None, Some(idp), Some(sub), None, None) => Account::SubFi(subject(idp, sub)),
        (None, None, None, Some(sp), Some(sub)) => Account::SubFs(subject(sp, sub)),
        _ => {
            return Err(format!(
                "name the account one way: --account ID, --idp IDP --sub-fi SUB or --sp CLIENT --sub-fs SUB\n{USAGE}"
            ));
        }
    };
    let (Some(case), Some(reason), Some(proof)) =
        (get("--case"), get("--reason"), get("--proof-file"))
    else {
        return Err(format!(
            "suspend-account needs --case, --reason and --proof-file\n{USAGE}"
        ));
    };
    let proof = PathBuf::from(proof);
    // Checked first, so the steps after the suspension do not fail on it.
    if proof.exists() {
        return Err(format!(
            "{}: exists already; a case's file is never overwritten",
            proof.display()
        ));
    }
    let sp = get("--sp");
    let status = |s: tonic::Status| format!("{}: {}", s.code(), s.message());
    let done = front_client
        .suspend_account(front::SuspendAccountRequest {
            account: Some(account),
            case: case.clone(),
            reason: reason.clone(),
        })
        .await
        .map_err(status)?
        .into_inner();
    println!(
        "account {} suspended at {} (case {case}): {} sessions ended, {} access tokens revoked, {} codes revoked, {} back-channel logout notices queued",
        done.account_id,
        done.suspended_at,
        done.sessions_ended,
        done.tokens_revoked,
        done.codes_revoked,
        done.logout_notices
    );
    let left = |what: &str, e: String| {
        format!(
            "account {} STAYS SUSPENDED, but {what} failed: {e}\n\
             finish by hand: `relais admin export-case {case} account:{} --out FILE` and a support ticket",
            done.account_id, done.account_id
        )
    };
    let exported = proof_store
        .export_case(trace::ExportCaseRequest {
            case: case.clone(),
            reason: reason.clone(),
            subject: Some(trace::export_case_request::Subject::AccountId(
                done.account_id.clone(),
            )),
            ..Default::default()
        })
        .await
        .map_err(|s| left("the proof file's export", status(s)))?
        .into_inner();
    write_new(&proof, &exported.proof_file).map_err(|e| left("writing the proof file", e))?;
    let checkpoint = proof_file::parse(&exported.proof_file)
        .map(|p| p.checkpoint)
        .map_err(|e| left("reading the proof file", e.to_string()))?;
    println!(
        "{}: {} records of {} connections; the export is record {}",
        proof.display(),
        exported.records,
        exported.connections,
        exported.export_event_id
    );
    // The ticket is about the SP that reported, else the IdP that brought the person.
    let (kind, partner) = match sp {
        Some(sp) => (support::PartnerKind::Sp, sp),
        None => (support::PartnerKind::Idp, done.idp_id.clone()),
    };
    let ticket = support_client
        .open_ticket(support::OpenTicketRequest {
            caller: Some(support::Caller {
                who: Some(support::caller::Who::Staff(support::Staff {
                    role: "level3".into(),
                    name: "relais-admin".into(),
                })),
            }),
            partner_kind: kind as i32,
            partner_id: partner,
            scope: "one_user".into(),
            // A security problem: critical.
            severity: 1,
            subject: format!("Identity theft, case {case}: account {} suspended", done.account_id),
            body: format!(
                "Case: {case}\nAccount: {}\nSuspended at: {}\nReason: {reason}\n\
                 Sessions ended: {}; access tokens revoked: {}; codes revoked: {}; back-channel notices: {}\n\
                 Proof file: {} ({} records of {} connections; export record {})\n\
                 Checkpoint of the proof file:\n{checkpoint}",
                done.account_id,
                done.suspended_at,
                done.sessions_ended,
                done.tokens_revoked,
                done.codes_revoked,
                done.logout_notices,
                proof.display(),
                exported.records,
                exported.connections,
                exported.export_event_id
            ),
            attachments: Vec::new(),
        })
        .await
        .map_err(|s| left("opening the support ticket", status(s)))?
        .into_inner();
    println!(
        "support ticket {} opened (severity {})",
        ticket.id, ticket.severity_name
    );
    Ok(())
}

/// `lift-account-suspension --account ID --case CASE --reason TEXT`.
async fn lift_account_suspension(
    args: &[String],
    mut front_client: OidcFrontClient<Channel>,
) -> Result<(), String> {
    let f = flags(args, &["--account", "--case", "--reason"])?;
    let (Some(account_id), Some(case), Some(reason)) =
        (f.get("--account"), f.get("--case"), f.get("--reason"))
    else {
        return Err(format!(
            "lift-account-suspension needs --account, --case and --reason\n{USAGE}"
        ));
    };
    let lifted = front_client
        .lift_account_suspension(front::LiftAccountSuspensionRequest {
            account_id: account_id.clone(),
            case: case.clone(),
            reason: reason.clone(),
        })
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?
        .into_inner();
    println!(
        "account {} may sign in again (case {case}); the lifting is recorded",
        lifted.account_id
    );
    Ok(())
}

/// Writes `text` to a new file (never over one: a case's file is evidence).
fn write_new(file: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", file.display()))
}

fn status_name(status: i32) -> &'static str {
    PartnerStatus::from_proto(status).map_or("unknown", PartnerStatus::as_str)
}

/// `checkpoint-key FILE`: a new Ed25519 key of the log `trace.origin`, written to FILE (mode
/// 0600, never over an existing file: a log's key is not replaced by mistake); its public
/// verifier key is printed, for those who check the checkpoints.
fn write_checkpoint_key(config: &RelaisConfig, file: &Path) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (private, public) = relais_trace::checkpoint::generate_key(&config.trace.origin)
        .map_err(|e| format!("trace.origin {:?}: {e}", config.trace.origin))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    writeln!(out, "{}", private.expose()).map_err(|e| format!("{}: {e}", file.display()))?;
    println!(
        "checkpoint key of {} written to {}",
        config.trace.origin,
        file.display()
    );
    println!(
        "set trace.checkpoint_key_file = {:?}",
        file.display().to_string()
    );
    println!("verifier key (publish it; checkpoints are checked with it):");
    println!("{public}");
    Ok(())
}

/// `pki init|issue`: files in DIR (`--dir`, else where `grpc.ca_file` is).
fn run_pki(config: &RelaisConfig, args: &[String]) -> Result<(), String> {
    let mut dir = None;
    let mut words = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--dir" {
            dir =
                Some(PathBuf::from(args.get(i + 1).ok_or_else(|| {
                    format!("--dir needs a directory\n{USAGE}")
                })?));
            i += 1;
        } else {
            words.push(args[i].as_str());
        }
        i += 1;
    }
    let dir = match dir {
        Some(d) => d,
        None if !config.grpc.ca_file.is_empty() => Path::new(&config.grpc.ca_file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        None => return Err(format!("no --dir and no grpc.ca_file\n{USAGE}")),
    };
    let shown = dir.display();
    match words.as_slice() {
        ["init"] => {
            pki::init(&dir, CA_DAYS, SERVICE_DAYS).map_err(|e| e.to_string())?;
            println!("CA and service certificates written to {shown} (keep ca.key offline)");
        }
        ["issue", "operator", name] => {
            let peer = Peer::operator(name)
                .ok_or_else(|| format!("an operator's name is one DNS label: {name}"))?;
            pki::issue_into(&dir, &peer, OPERATOR_DAYS).map_err(|e| e.to_string())?;
            println!("{} written to {shown}/operator.pem", peer.dns_name());
        }
        ["issue", service] => {
            let role = Role::parse(service)
                .filter(|r| *r != Role::Operator)
                .ok_or_else(|| format!("unknown service {service}\n{USAGE}"))?;
            pki::issue_into(&dir, &Peer::service(role), SERVICE_DAYS).map_err(|e| e.to_string())?;
            println!("{} written to {shown}/{service}.pem", role.dns_name());
        }
        _ => return Err(format!("unknown pki command\n{USAGE}")),
    }
    Ok(())
}
