//! Server-rendered pages, in French. Every value from a request, a config or a provider goes
//! through [`escape`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

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
         <title>{title} – Service de démonstration</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\n\
         pre{{background:#f4f4f4;padding:.75rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}}\n\
         table{{border-collapse:collapse}} th,td{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}}\n\
         button{{font-size:1rem;padding:.5rem 1rem}} label{{display:block;margin-top:.5rem}}\n\
         :focus{{outline:3px solid #000091;outline-offset:2px}}\n</style>\n</head>\n<body>\n\
         <header><p>Service de démonstration Relais</p></header>\n<main>\n{body}</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

/// The defaults shown in the advanced form.
pub(crate) struct LoginDefaults<'a> {
    pub scopes: &'a str,
    pub acr_values: &'a str,
}

pub(crate) fn home(defaults: &LoginDefaults<'_>) -> String {
    let body = format!(
        "<h1>Service de démonstration</h1>\n\
         <p>Ce service montre ce qu'un fournisseur de service reçoit quand vous vous connectez.</p>\n\
         <form method=\"get\" action=\"/login\">\n\
         <button type=\"submit\">Se connecter avec Relais</button>\n</form>\n\
         <details>\n<summary>Options avancées</summary>\n\
         <form method=\"get\" action=\"/login\">\n\
         <label for=\"scope\">Scopes (séparés par des espaces)</label>\n\
         <input type=\"text\" id=\"scope\" name=\"scope\" size=\"60\" value=\"{scopes}\">\n\
         <label for=\"acr_values\">acr_values (séparés par des espaces)</label>\n\
         <input type=\"text\" id=\"acr_values\" name=\"acr_values\" value=\"{acr}\">\n\
         <label for=\"idp_hint\">idp_hint (fournisseur d'identité à utiliser directement)</label>\n\
         <input type=\"text\" id=\"idp_hint\" name=\"idp_hint\">\n\
         <label for=\"login_hint\">login_hint (adresse électronique)</label>\n\
         <input type=\"email\" id=\"login_hint\" name=\"login_hint\" autocomplete=\"email\">\n\
         <p><button type=\"submit\">Se connecter avec ces options</button></p>\n\
         </form>\n</details>\n",
        scopes = escape(defaults.scopes),
        acr = escape(defaults.acr_values),
    );
    page("Accueil", &body)
}

/// What a completed sign-in shows.
pub(crate) struct SignedInView<'a> {
    pub display_name: &'a str,
    pub acr: Option<&'a str>,
    pub acr_asked: &'a [String],
    pub userinfo: Option<&'a BTreeMap<String, Value>>,
    pub raw_id_token: &'a str,
    pub header: &'a str,
    pub payload: &'a str,
    /// The demo support console: the access token and the API it opens.
    pub support: Option<(&'a str, &'a str)>,
}

fn claim_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn signed_in(view: &SignedInView<'_>) -> String {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<h1>Bonjour {}</h1>\n<p>Vous êtes connecté.</p>",
        escape(view.display_name)
    );
    let asked = if view.acr_asked.is_empty() {
        "aucun".to_owned()
    } else {
        view.acr_asked.join(" ")
    };
    let _ = writeln!(
        body,
        "<h2>Niveau de garantie</h2>\n<p>acr obtenu : <strong>{}</strong> (demandé : {})</p>",
        escape(view.acr.unwrap_or("aucun")),
        escape(&asked)
    );
    body.push_str("<h2>Informations reçues (userinfo)</h2>\n");
    match view.userinfo {
        Some(claims) => {
            body.push_str(
                "<table>\n<thead><tr><th scope=\"col\">Claim</th><th scope=\"col\">Valeur</th></tr></thead>\n<tbody>\n",
            );
            for (name, value) in claims {
                let _ = writeln!(
                    body,
                    "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                    escape(name),
                    escape(&claim_text(value))
                );
            }
            body.push_str("</tbody>\n</table>\n");
        }
        None => body.push_str("<p>Le fournisseur n'a pas de point userinfo.</p>\n"),
    }
    let _ = writeln!(
        body,
        "<h2>ID token</h2>\n<h3>Brut</h3>\n<pre>{}</pre>\n<h3>En-tête décodé</h3>\n<pre>{}</pre>\n\
         <h3>Contenu décodé</h3>\n<pre>{}</pre>",
        escape(view.raw_id_token),
        escape(view.header),
        escape(view.payload)
    );
    if let Some((token, api)) = view.support {
        let _ = writeln!(
            body,
            "<h2>API du support</h2>\n<p>Ce jeton d'accès ouvre l'API du support \
             (<a href=\"{api}/openapi.json\">description OpenAPI</a>) avec le rôle que \
             le registre vous donne :</p>\n<pre>curl -H 'Authorization: Bearer {token}' \
             {api}/tickets</pre>",
            api = escape(api),
            token = escape(token)
        );
    }
    body.push_str(
        "<form method=\"post\" action=\"/logout\">\n<button type=\"submit\">Se déconnecter</button>\n</form>\n",
    );
    page("Connecté", &body)
}

pub(crate) fn error(code: &str, message: &str) -> String {
    page(
        "Erreur",
        &format!(
            "<h1>La connexion a échoué</h1>\n\
             <p role=\"alert\">Code d'erreur : <strong><code>{}</code></strong></p>\n\
             <p>{}</p>\n<p><a href=\"/\">Revenir à l'accueil</a></p>\n",
            escape(code),
            escape(message)
        ),
    )
}

pub(crate) fn logged_out(note: &str) -> String {
    page(
        "Déconnexion",
        &format!(
            "<h1>Vous êtes déconnecté</h1>\n<p>{}</p>\n<p><a href=\"/\">Revenir à l'accueil</a></p>\n",
            escape(note)
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn claims_are_escaped() {
        let mut claims = BTreeMap::new();
        claims.insert("given_name".to_owned(), Value::from("<b>Eve</b>"));
        let html = signed_in(&SignedInView {
            display_name: "<b>Eve</b>",
            acr: Some("eidas2"),
            acr_asked: &["eidas1".to_owned()],
            userinfo: Some(&claims),
            raw_id_token: "a.b.c",
            support: None,
            header: "{}",
            payload: "{}",
        });
        assert!(!html.contains("<b>"));
        assert!(html.contains("Bonjour &lt;b&gt;Eve&lt;/b&gt;"));
        assert!(html.contains("acr obtenu : <strong>eidas2</strong> (demandé : eidas1)"));
        assert!(
            !html.contains("API du support"),
            "only the console shows its token"
        );
    }

    #[test]
    fn the_console_shows_its_token_and_the_api_it_opens() {
        let html = signed_in(&SignedInView {
            display_name: "Camille",
            acr: Some("eidas1"),
            acr_asked: &[],
            userinfo: None,
            raw_id_token: "a.b.c",
            support: Some(("tok<en>", "http://127.0.0.1:8000/api/support/v1")),
            header: "{}",
            payload: "{}",
        });
        assert!(html.contains("Bearer tok&lt;en&gt;"));
        assert!(html.contains("http://127.0.0.1:8000/api/support/v1/tickets"));
        assert!(html.contains("href=\"http://127.0.0.1:8000/api/support/v1/openapi.json\""));
    }
}
