//! Server-rendered pages. Every value from a request or a config goes through [`escape`].

use std::fmt::Write as _;

use crate::identities::{Acr, TEST_IDENTITIES, TestIdentity};
use crate::scenario::Scenario;

/// Escapes text for HTML element content and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} – IdP de démonstration</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\n\
         fieldset{{margin:1rem 0}} label{{cursor:pointer}} .niveau{{color:#555}}\n\
         button{{font-size:1rem;padding:.5rem 1rem;margin-right:.5rem}}\n\
         :focus{{outline:3px solid #000091;outline-offset:2px}}\n</style>\n</head>\n<body>\n\
         <header><p>IdP de démonstration Relais – données fictives</p></header>\n\
         <main>\n{body}</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

pub(crate) struct LoginView<'a> {
    pub request_id: &'a str,
    pub sp_name: &'a str,
    pub acr_asked: Option<Acr>,
    pub preselected: &'a TestIdentity,
    pub scenario: Scenario,
}

pub(crate) fn login_page(view: &LoginView<'_>) -> String {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<h1>Vous vous connectez à {}</h1>",
        escape(view.sp_name)
    );
    if let Some(acr) = view.acr_asked {
        let _ = writeln!(
            body,
            "<p>Niveau de garantie demandé : <strong>{}</strong></p>",
            acr.as_str()
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/authorize/login\">\n\
         <input type=\"hidden\" name=\"request_id\" value=\"{}\">\n\
         <fieldset>\n<legend>Choisissez une identité de test</legend>\n",
        escape(view.request_id)
    );
    for identity in TEST_IDENTITIES {
        let checked = if identity.id == view.preselected.id {
            " checked"
        } else {
            ""
        };
        let too_low = match view.acr_asked {
            Some(asked) if identity.acr < asked => " (niveau insuffisant)",
            _ => "",
        };
        let _ = write!(
            body,
            "<div><input type=\"radio\" name=\"identity\" id=\"identity-{id}\" value=\"{id}\"{checked}>\n\
             <label for=\"identity-{id}\">{given} {usual} – {email} \
             <span class=\"niveau\">{acr}{too_low}</span></label></div>\n",
            id = escape(identity.id),
            given = escape(identity.given_name),
            usual = escape(identity.usual_name),
            email = escape(identity.email),
            acr = identity.acr.as_str(),
        );
    }
    body.push_str(
        "</fieldset>\n<p><label for=\"scenario\">Panne à simuler pour cette connexion</label><br>\n\
         <select name=\"scenario\" id=\"scenario\">\n",
    );
    for scenario in Scenario::ALL {
        let selected = if scenario == view.scenario {
            " selected"
        } else {
            ""
        };
        let _ = writeln!(
            body,
            "<option value=\"{}\"{selected}>{}</option>",
            scenario.as_str(),
            escape(scenario.label_fr())
        );
    }
    body.push_str(
        "</select></p>\n<p><button type=\"submit\" name=\"action\" value=\"login\">Se connecter</button>\n\
         <button type=\"submit\" name=\"action\" value=\"cancel\">Annuler</button></p>\n</form>\n",
    );
    page("Connexion", &body)
}

pub(crate) fn error_page(error: &str, description: &str) -> String {
    page(
        "Erreur",
        &format!(
            "<h1>La demande de connexion est refusée</h1>\n\
             <p role=\"alert\">Erreur <code>{}</code> : {}</p>\n\
             <p>Le fournisseur de service n'a pas été contacté, car son adresse de retour \
             n'est pas sûre ou la demande est incomplète.</p>\n",
            escape(error),
            escape(description)
        ),
    )
}

pub(crate) fn signed_out_page() -> String {
    page(
        "Déconnexion",
        "<h1>Vous êtes déconnecté</h1>\n<p>Vous pouvez fermer cette page.</p>\n",
    )
}

/// The value of the hidden `request_id` field of a login page, for tests that drive the form.
pub fn login_request_id(html: &str) -> Option<&str> {
    let marker = "name=\"request_id\" value=\"";
    let start = html.find(marker)? + marker.len();
    let len = html[start..].find('"')?;
    Some(&html[start..start + len])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn escapes_markup_in_the_sp_name() {
        let html = login_page(&LoginView {
            request_id: "abc",
            sp_name: "<script>x</script>\"",
            acr_asked: Some(Acr::Eidas2),
            preselected: &TEST_IDENTITIES[1],
            scenario: Scenario::LowerAcr,
        });
        assert!(html.contains("Vous vous connectez à &lt;script&gt;x&lt;/script&gt;&quot;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("value=\"jean\" checked"));
        assert!(html.contains("value=\"lower_acr\" selected"));
        assert!(html.contains("eidas1 (niveau insuffisant)"));
        assert_eq!(login_request_id(&html), Some("abc"));
    }
}
