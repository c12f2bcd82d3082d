//! `relais trace verify --file FILE --key VKEY [--witness-key WKEY …]`: checks a proof file
//! offline, with nothing but the file, the log's public verifier key (C2SP vkey, or a file
//! holding it) and the keys of the witnesses whose cosignature is required.

use std::process::ExitCode;

use relais_trace::proof_file;

pub const USAGE: &str =
    "usage: relais trace verify --file FILE --key VKEY|KEY_FILE [--witness-key WKEY|WKEY_FILE …]";

/// Exit status when the file does not verify (2 is a usage error).
const REFUSED: u8 = 1;

pub fn run(args: &[String]) -> ExitCode {
    match verify(args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("relais trace verify: {message}");
            ExitCode::from(code)
        }
    }
}

fn verify(args: &[String]) -> Result<String, (u8, String)> {
    let usage = |why: &str| (2, format!("{why}\n{USAGE}"));
    let (mut file, mut key, mut witnesses) = (None, None, Vec::new());
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--file" => file = Some(words.next().ok_or_else(|| usage("--file needs a file"))?),
            "--key" => key = Some(words.next().ok_or_else(|| usage("--key needs a key"))?),
            "--witness-key" => witnesses.push(
                words
                    .next()
                    .ok_or_else(|| usage("--witness-key needs a key"))?,
            ),
            other => return Err(usage(&format!("unexpected argument {other}"))),
        }
    }
    let file = file.ok_or_else(|| usage("--file is required"))?;
    let key = key.ok_or_else(|| usage("--key is required"))?;
    // The key itself, or a file holding it.
    let read = |key: &String| {
        if std::path::Path::new(key).is_file() {
            std::fs::read_to_string(key)
                .map(|k| k.trim().to_string())
                .map_err(|e| (2, format!("{key}: {e}")))
        } else {
            Ok(key.clone())
        }
    };
    let key = read(key)?;
    let witnesses = witnesses
        .into_iter()
        .map(read)
        .collect::<Result<Vec<_>, _>>()?;
    let text = std::fs::read_to_string(file).map_err(|e| (2, format!("{file}: {e}")))?;
    let refused = |e: proof_file::Failure| (REFUSED, format!("{file} does not verify: {e}"));
    let parsed = proof_file::parse(&text).map_err(refused)?;
    let v = proof_file::verify_witnessed(&parsed, key.trim(), &witnesses).map_err(refused)?;
    let mut summary = format!(
        "{file}: verified\n  log: {}\n  case: {}\n  records: {} (each in the signed tree of {} \
         records, root {})",
        v.origin,
        v.case,
        v.records,
        v.checkpoint.size,
        hex(&v.checkpoint.root.0)
    );
    if let Some(newer) = v.extended_to {
        summary.push_str(&format!(
            "\n  extended by the signed tree of {} records, root {}",
            newer.size,
            hex(&newer.root.0)
        ));
    }
    for (witness, at) in &v.cosigned_by {
        summary.push_str(&format!(
            "\n  cosigned by the witness {witness} (at {at}, seconds since the epoch)"
        ));
    }
    if parsed.truncated {
        summary.push_str("\n  note: the export was bounded; more records matched its selection");
    }
    Ok(summary)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
