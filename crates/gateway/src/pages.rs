//! The HTML pages (the IdP chooser, the logout confirmation, notices and the error page), in French or English.
//! Templates live in `templates/`; askama escapes every value put into them.

use askama::Template;
use relais_proto::oidc_front::v1::{Chooser, LogoutConfirm, Notice};
use relais_proto::trace::v1::MyConnectionsResponse;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Locale {
    Fr,
    En,
}

impl Locale {
    /// The locale oidc-front chose; French unless it says English.
    pub(crate) fn from_backend(locale: &str) -> Self {
        if locale.eq_ignore_ascii_case("en") || locale.to_ascii_lowercase().starts_with("en-") {
            Locale::En
        } else {
            Locale::Fr
        }
    }

    /// For pages the gateway shows on its own: by the rule oidc-front follows for its
    /// pages, so a sign-in never changes language between the two.
    pub(crate) fn from_accept_language(header: &str) -> Self {
        Locale::from_backend(relais_config::page_language("", header))
    }

    fn texts(self) -> &'static Texts {
        match self {
            Locale::Fr => &FR,
            Locale::En => &EN,
        }
    }
}

struct Texts {
    lang: &'static str,
    sign_in_to: &'static str,
    with_relais: &'static str,
    acr_asked: &'static str,
    choose_idp: &'static str,
    no_idp: &'static str,
    error_title: &'static str,
    error_code: &'static str,
    request_id: &'static str,
    error_doc: &'static str,
    back_to: &'static str,
    retry: &'static str,
    levels: [&'static str; 3],
    acr_not_supported: &'static str,
    disabled: &'static str,
    unavailable: &'static str,
    service_unavailable: &'static str,
    malformed_request: &'static str,
    account_sign_in_failed: &'static str,
    not_found: &'static str,
    generic_error: &'static str,
    notice_title: &'static str,
    signed_out: &'static str,
    still_signed_in: &'static str,
    sign_out_of: &'static str,
    asked_by: &'static str,
    sign_out_explained: &'static str,
    sign_out: &'static str,
    stay_signed_in: &'static str,
}

static FR: Texts = Texts {
    lang: "fr",
    sign_in_to: "Connexion à",
    with_relais: "avec Relais",
    acr_asked: "Niveau de garantie demandé :",
    choose_idp: "Choisissez le compte avec lequel vous connecter",
    no_idp: "Aucun fournisseur d’identité n’est proposé pour ce service.",
    error_title: "Une erreur est survenue",
    error_code: "Code d’erreur",
    request_id: "Identifiant de la requête",
    error_doc: "Comprendre cette erreur",
    back_to: "Retour à",
    retry: "Choisir un autre compte",
    levels: ["faible", "renforcé", "élevé"],
    acr_not_supported: "ne peut pas fournir le niveau de garantie demandé",
    disabled: "momentanément indisponible",
    unavailable: "indisponible",
    service_unavailable: "Le service est momentanément indisponible. Réessayez dans quelques instants.",
    malformed_request: "La requête reçue est mal formée et ne peut pas être traitée.",
    account_sign_in_failed: "La connexion à votre espace n’a pas abouti. Ouvrez de nouveau la page /account.",
    not_found: "Cette page n’existe pas.",
    generic_error: "La connexion n’a pas pu aboutir.",
    notice_title: "Information",
    signed_out: "Vous êtes déconnecté",
    still_signed_in: "Vous êtes toujours connecté",
    sign_out_of: "Se déconnecter de Relais ?",
    asked_by: "Demande venant de",
    sign_out_explained: "Vous serez déconnecté de Relais et des services où vous vous êtes connecté avec Relais.",
    sign_out: "Se déconnecter",
    stay_signed_in: "Rester connecté",
};

static EN: Texts = Texts {
    lang: "en",
    sign_in_to: "Sign in to",
    with_relais: "with Relais",
    acr_asked: "Assurance level asked:",
    choose_idp: "Choose the account to sign in with",
    no_idp: "No identity provider is offered for this service.",
    error_title: "Something went wrong",
    error_code: "Error code",
    request_id: "Request id",
    error_doc: "About this error",
    back_to: "Back to",
    retry: "Choose another account",
    levels: ["low", "substantial", "high"],
    acr_not_supported: "cannot provide the assurance level asked",
    disabled: "temporarily unavailable",
    unavailable: "unavailable",
    service_unavailable: "The service is temporarily unavailable. Please try again in a few moments.",
    malformed_request: "The request is malformed and cannot be processed.",
    account_sign_in_failed: "The sign-in to your account page did not complete. Open /account again.",
    not_found: "This page does not exist.",
    generic_error: "The sign-in could not be completed.",
    notice_title: "Information",
    signed_out: "You are signed out",
    still_signed_in: "You are still signed in",
    sign_out_of: "Sign out of Relais?",
    asked_by: "Asked by",
    sign_out_explained: "You will be signed out of Relais and of the services you signed in to with Relais.",
    sign_out: "Sign out",
    stay_signed_in: "Stay signed in",
};

struct IdpView {
    id: String,
    name: String,
    available: bool,
    reason: &'static str,
}

#[derive(Template)]
#[template(path = "chooser.html")]
struct ChooserPage<'a> {
    t: &'a Texts,
    sp_name: &'a str,
    acr: String,
    csrf: &'a str,
    idps: Vec<IdpView>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: &'a Texts,
    message: &'a str,
    code: &'a str,
    request_id: &'a str,
    back_url: &'a str,
    sp_name: &'a str,
    retry_url: &'a str,
}

/// The ways on from an error of a sign-in oidc-front trusts: back to the service (its
/// redirect URI with the OAuth error), or the chooser again.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WaysOut<'a> {
    pub(crate) back_url: &'a str,
    pub(crate) sp_name: &'a str,
    pub(crate) retry_url: &'a str,
}

pub(crate) fn chooser(chooser: &Chooser) -> askama::Result<String> {
    let t = Locale::from_backend(&chooser.locale).texts();
    ChooserPage {
        t,
        sp_name: &chooser.sp_name,
        acr: acr_in_words(t, chooser),
        csrf: &chooser.csrf,
        idps: chooser
            .idps
            .iter()
            .map(|idp| IdpView {
                id: idp.id.clone(),
                name: idp.name.clone(),
                available: idp.available,
                reason: match idp.unavailable_reason.as_str() {
                    "acr_not_supported" => t.acr_not_supported,
                    "disabled" => t.disabled,
                    _ => t.unavailable,
                },
            })
            .collect(),
    }
    .render()
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct LogoutConfirmPage<'a> {
    t: &'a Texts,
    sp_name: &'a str,
    token: &'a str,
}

/// "Sign out of Relais?": a logout not proven to come from the SP, confirmed by a POST
/// that carries oidc-front's sealed token (no script, the form is the whole page).
pub(crate) fn logout_confirm(confirm: &LogoutConfirm) -> askama::Result<String> {
    LogoutConfirmPage {
        t: Locale::from_backend(&confirm.locale).texts(),
        sp_name: &confirm.sp_name,
        token: &confirm.token,
    }
    .render()
}

#[derive(Template)]
#[template(path = "notice.html")]
struct NoticePage<'a> {
    t: &'a Texts,
    title: &'a str,
    message: &'a str,
}

/// A page that informs (e.g. after sign-out); its title comes from its stable code.
pub(crate) fn notice(notice: &Notice) -> askama::Result<String> {
    let t = Locale::from_backend(&notice.locale).texts();
    NoticePage {
        t,
        title: match notice.code.as_str() {
            "signed_out" => t.signed_out,
            "still_signed_in" => t.still_signed_in,
            _ => t.notice_title,
        },
        message: &notice.message,
    }
    .render()
}

/// An error page; an empty `message` gets a generic one in the page's language.
pub(crate) fn error(
    locale: Locale,
    code: &str,
    message: &str,
    request_id: &str,
    ways: WaysOut<'_>,
) -> askama::Result<String> {
    let t = locale.texts();
    // Only web addresses become links; a path of the hub for the chooser.
    let web = |u: &str| u.starts_with("https://") || u.starts_with("http://");
    ErrorPage {
        t,
        message: if message.is_empty() {
            t.generic_error
        } else {
            message
        },
        code,
        request_id,
        back_url: if web(ways.back_url) {
            ways.back_url
        } else {
            ""
        },
        sp_name: ways.sp_name,
        retry_url: if ways.retry_url == "/chooser" {
            ways.retry_url
        } else {
            ""
        },
    }
    .render()
}

/// The text of an error the gateway itself produces, by its stable code.
pub(crate) fn gateway_message(locale: Locale, code: &str) -> &'static str {
    let t = locale.texts();
    match code {
        "malformed_request" => t.malformed_request,
        "account_sign_in_failed" => t.account_sign_in_failed,
        "not_found" => t.not_found,
        "service_unavailable" => t.service_unavailable,
        _ => t.generic_error,
    }
}

/// `eidas2` → "substantial (eidas2)": the words of its place on the deployment's ladder,
/// as oidc-front tells it (the lowest of three is low, the highest high); a ladder of
/// another length, or a level it does not place, is shown as it is.
fn acr_in_words(t: &Texts, chooser: &Chooser) -> String {
    let value = &chooser.acr_asked;
    let rank = usize::try_from(chooser.acr_rank).unwrap_or(0);
    match (chooser.acr_levels, rank) {
        (3, 1..=3) => format!("{} ({value})", t.levels[rank - 1]),
        _ => value.clone(),
    }
}

/// One error code of the documentation.
pub(crate) struct DocEntry {
    code: String,
    lines: Vec<String>,
}

#[derive(Template)]
#[template(path = "docs.html")]
struct DocsPage<'a> {
    t: &'a Texts,
    title: &'a str,
    entries: &'a [DocEntry],
}

/// The error-code documentation (docs/errors.md), one section per code, each reachable
/// as `/docs/errors#<code>` from the error pages. Markup is not interpreted: escaped text.
pub(crate) fn error_docs(markdown: &str) -> askama::Result<String> {
    let mut entries: Vec<DocEntry> = Vec::new();
    for line in markdown.lines() {
        if let Some(code) = line.strip_prefix("## ") {
            entries.push(DocEntry {
                code: code.trim().to_string(),
                lines: Vec::new(),
            });
        } else if let (Some(item), Some(entry)) = (line.strip_prefix("- "), entries.last_mut()) {
            entry.lines.push(item.replace('`', ""));
        }
    }
    DocsPage {
        t: Locale::En.texts(),
        title: "Relais error codes",
        entries: &entries,
    }
    .render()
}

/// The words of the account page.
pub(crate) struct AccountTexts {
    lang: &'static str,
    title: &'static str,
    intro: &'static str,
    caption: &'static str,
    when: &'static str,
    service: &'static str,
    idp: &'static str,
    level: &'static str,
    outcome: &'static str,
    empty: &'static str,
    truncated: &'static str,
    about: &'static str,
    data_shared: &'static str,
    location: &'static str,
    recorded: &'static str,
    outcomes: [&'static str; 4],
}

static ACCOUNT_FR: AccountTexts = AccountTexts {
    lang: "fr",
    title: "Mon historique de connexions",
    intro: "Vos connexions des six derniers mois par Relais, de la plus récente à la plus ancienne.",
    caption: "Connexions des six derniers mois",
    when: "Date et heure (UTC)",
    service: "Service",
    idp: "Compte utilisé",
    level: "Niveau de garantie",
    outcome: "Résultat",
    empty: "Aucune connexion au cours des six derniers mois.",
    truncated: "Seules les connexions les plus récentes sont affichées.",
    about: "À propos de cet historique",
    data_shared: "Les données transmises à chaque service ne sont pas conservées dans le journal des connexions : elles ne peuvent pas être affichées ici.",
    location: "Relais ne déduit pas de ville ni de pays de l’adresse de connexion : aucun lieu n’est affiché.",
    recorded: "Chaque consultation de cette page est elle-même enregistrée dans le journal.",
    outcomes: [
        "Réussie",
        "Échouée",
        "Inachevée",
        "Réussie, puis déconnexion",
    ],
};

static ACCOUNT_EN: AccountTexts = AccountTexts {
    lang: "en",
    title: "My connection history",
    intro: "Your connections through Relais over the last six months, newest first.",
    caption: "Connections of the last six months",
    when: "Date and time (UTC)",
    service: "Service",
    idp: "Account used",
    level: "Assurance level",
    outcome: "Outcome",
    empty: "No connection in the last six months.",
    truncated: "Only the most recent connections are shown.",
    about: "About this history",
    data_shared: "The data passed to each service are not kept in the connection log, so they cannot be shown here.",
    location: "Relais does not derive a city or a country from the connection's address: no place is shown.",
    recorded: "Each view of this page is itself recorded in the log.",
    outcomes: [
        "Succeeded",
        "Failed",
        "Not completed",
        "Succeeded, then signed out",
    ],
};

struct HistoryRow {
    started_at: String,
    when: String,
    sp: String,
    idp: String,
    acr: String,
    outcome: &'static str,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    t: &'a AccountTexts,
    rows: Vec<HistoryRow>,
    truncated: bool,
}

/// `2026-12-03T17:55:02.123Z` → `2026-12-03 17:55`.
fn minute(rfc3339: &str) -> String {
    let (day, rest) = rfc3339.split_once('T').unwrap_or((rfc3339, ""));
    format!("{day} {}", rest.get(..5).unwrap_or(rest))
}

pub(crate) fn account(locale: Locale, history: &MyConnectionsResponse) -> askama::Result<String> {
    let t = match locale {
        Locale::Fr => &ACCOUNT_FR,
        Locale::En => &ACCOUNT_EN,
    };
    let rows = history
        .connections
        .iter()
        .map(|c| HistoryRow {
            started_at: c.started_at.clone(),
            when: minute(&c.started_at),
            sp: c.sp_id.clone(),
            idp: c.idp_id.clone(),
            acr: c.acr.clone(),
            outcome: match c.outcome.as_str() {
                "succeeded" => t.outcomes[0],
                "failed" => t.outcomes[1],
                "logged_out" => t.outcomes[3],
                _ => t.outcomes[2],
            },
        })
        .collect();
    AccountPage {
        t,
        rows,
        truncated: history.truncated,
    }
    .render()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use relais_proto::trace::v1::HistoryEntry;

    fn history() -> MyConnectionsResponse {
        MyConnectionsResponse {
            connections: vec![
                HistoryEntry {
                    connection_id: "c2".into(),
                    started_at: "2026-12-03T17:55:02.123Z".into(),
                    sp_id: "sp-<b>".into(),
                    idp_id: "demo-idp".into(),
                    acr: "eidas2".into(),
                    outcome: "succeeded".into(),
                },
                HistoryEntry {
                    connection_id: "c1".into(),
                    started_at: "2026-11-01T08:00:00Z".into(),
                    sp_id: "sp-a".into(),
                    idp_id: "demo-idp".into(),
                    acr: "eidas1".into(),
                    outcome: "failed".into(),
                },
            ],
            truncated: false,
            view_event_id: "e".into(),
        }
    }

    #[test]
    fn the_history_is_a_table_with_its_caption_and_headers_in_french() {
        let html = account(Locale::Fr, &history()).unwrap();
        assert!(html.contains(r#"<html lang="fr">"#), "{html}");
        assert!(
            html.contains("<caption>Connexions des six derniers mois</caption>"),
            "{html}"
        );
        assert_eq!(html.matches(r#"<th scope="col">"#).count(), 5, "{html}");
        assert_eq!(html.matches(r#"<th scope="row">"#).count(), 2, "{html}");
        // Newest first, as trace answered, the time to the minute in UTC.
        let newer = html.find("2026-12-03 17:55").unwrap();
        let older = html.find("2026-11-01 08:00").unwrap();
        assert!(newer < older, "{html}");
        assert!(html.contains(r#"<time datetime="2026-12-03T17:55:02.123Z">"#));
        assert!(html.contains("<td>Réussie</td>") && html.contains("<td>Échouée</td>"));
        // What is not known is said, not guessed.
        assert!(html.contains("aucun lieu n’est affiché"), "{html}");
        // Values are escaped; no script at all.
        assert!(
            html.contains("sp-&lt;b&gt;") && !html.contains("sp-<b>"),
            "{html}"
        );
        assert!(!html.contains("<script"));
        assert!(!html.contains("Seules les connexions les plus récentes"));
    }

    #[test]
    fn the_history_in_english_and_when_empty_or_truncated() {
        let mut h = history();
        h.truncated = true;
        let html = account(Locale::En, &h).unwrap();
        assert!(html.contains(r#"<html lang="en">"#), "{html}");
        assert!(html.contains("<h1>My connection history</h1>"), "{html}");
        assert!(html.contains("Only the most recent connections are shown."));
        let empty = MyConnectionsResponse::default();
        let html = account(Locale::En, &empty).unwrap();
        assert!(
            html.contains("No connection in the last six months."),
            "{html}"
        );
        assert!(!html.contains("<table"), "{html}");
    }
}
