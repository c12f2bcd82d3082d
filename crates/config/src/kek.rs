//! Where a service's key-encryption key (KEK) comes from: inline (the environment), a
//! file (a mounted Kubernetes Secret), or, when neither is set, a development key refused
//! off loopback; plus the other KEKs that only open while the KEK is changed. The one rule
//! for every service that seals something at rest (the front's signing keys, the
//! registry's IdP client secrets).

use crate::{ConfigError, Secret, check_deployment_key};

/// The key-encryption key when none is configured: public, so for development on
/// loopback only.
pub const DEVELOPMENT_KEK: &str = "change-me-key-encryption-key-0123456789abcdef";

/// A KEK and an envelope's key both carry 256 bits: 32 characters at the least.
const MIN_KEK_LEN: usize = 32;

/// The names of a section's three KEK fields, as errors give them.
#[derive(Clone, Copy, Debug)]
pub struct KekFields {
    pub key: &'static str,
    pub file: &'static str,
    pub others: &'static str,
}

/// A section's KEK settings, borrowed from its configuration.
#[derive(Clone, Copy, Debug)]
pub struct KekSettings<'a> {
    pub fields: KekFields,
    pub key: &'a Secret,
    pub file: &'a str,
    pub others: &'a [Secret],
}

impl<'a> KekSettings<'a> {
    /// What can be checked without I/O: one source at most, each key long enough.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.key.is_empty() && !self.file.is_empty() {
            return Err(ConfigError::invalid(
                self.fields.file,
                format!("and {} are both set: give the key one way", self.fields.key),
            ));
        }
        if !self.key.is_empty() && self.key.expose().len() < MIN_KEK_LEN {
            return Err(ConfigError::invalid(
                self.fields.key,
                "must be at least 32 characters (256 bits)",
            ));
        }
        if self.others.iter().any(|k| k.expose().len() < MIN_KEK_LEN) {
            return Err(ConfigError::invalid(
                self.fields.others,
                "each must be at least 32 characters (256 bits)",
            ));
        }
        Ok(())
    }

    /// The KEK, read from its file if one is named (a trailing newline ignored); the
    /// development key when none is set. Returns the field it came from, for
    /// [`check_deployment_key`].
    pub fn current(&self) -> Result<(Secret, &'static str), ConfigError> {
        let (kek, field) = if !self.file.is_empty() {
            let text = std::fs::read_to_string(self.file).map_err(|e| {
                ConfigError::invalid(
                    self.fields.file,
                    format!("cannot be read ({}): {e}", self.file),
                )
            })?;
            (
                Secret::new(text.trim_end_matches(['\n', '\r'])),
                self.fields.file,
            )
        } else if !self.key.is_empty() {
            (self.key.clone(), self.fields.key)
        } else {
            (Secret::new(DEVELOPMENT_KEK), self.fields.key)
        };
        if kek.expose().len() < MIN_KEK_LEN {
            return Err(ConfigError::invalid(
                field,
                "must be at least 32 characters (256 bits)",
            ));
        }
        Ok((kek, field))
    }

    /// [`Self::current`], checked as a deployment's key against `issuer` (no development
    /// key and none under 256 bits off loopback), naming the field it came from.
    pub fn checked(&self, issuer: &str) -> Result<Secret, ConfigError> {
        let (kek, field) = self.current()?;
        check_deployment_key(field, kek.expose(), issuer)?;
        Ok(kek)
    }

    /// The keys given inline, for [`check_deployment_key`]; the KEK itself is checked
    /// where it is read ([`Self::checked`]).
    pub fn deployment_keys(&self) -> Vec<(&'static str, &'a Secret)> {
        let mut keys = Vec::new();
        if !self.key.is_empty() {
            keys.push((self.fields.key, self.key));
        }
        keys.extend(self.others.iter().map(|k| (self.fields.others, k)));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: KekFields = KekFields {
        key: "svc.key_encryption_key",
        file: "svc.key_encryption_key_file",
        others: "svc.other_key_encryption_keys",
    };
    const STRONG: &str = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8";

    fn settings<'a>(key: &'a Secret, file: &'a str, others: &'a [Secret]) -> KekSettings<'a> {
        KekSettings {
            fields: FIELDS,
            key,
            file,
            others,
        }
    }

    fn field_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { field, .. } => field,
            other => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn a_kek_given_two_ways_or_too_short_is_refused_naming_its_field() {
        let none = Secret::default();
        let strong = Secret::new(STRONG);
        let short = Secret::new("short");
        assert_eq!(
            field_of(settings(&strong, "/k", &[]).validate().unwrap_err()),
            FIELDS.file
        );
        assert_eq!(
            field_of(settings(&short, "", &[]).validate().unwrap_err()),
            FIELDS.key
        );
        assert_eq!(
            field_of(
                settings(&none, "", &[strong.clone(), short])
                    .validate()
                    .unwrap_err()
            ),
            FIELDS.others
        );
        settings(&strong, "", std::slice::from_ref(&strong))
            .validate()
            .unwrap();
    }

    #[test]
    fn the_kek_comes_from_its_file_inline_or_is_the_development_one_on_loopback_only() {
        let none = Secret::default();
        let dir = std::env::temp_dir().join(format!("relais-kek-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("kek");
        std::fs::write(&file, format!("{STRONG}\n")).unwrap();
        let path = file.to_str().unwrap();
        let (kek, field) = settings(&none, path, &[]).current().unwrap();
        assert_eq!((kek.expose(), field), (STRONG, FIELDS.file));
        std::fs::write(&file, "short\n").unwrap();
        assert_eq!(
            field_of(settings(&none, path, &[]).current().unwrap_err()),
            FIELDS.file
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            field_of(settings(&none, path, &[]).current().unwrap_err()),
            FIELDS.file
        );

        let inline = Secret::new(STRONG);
        let (kek, field) = settings(&inline, "", &[]).current().unwrap();
        assert_eq!((kek.expose(), field), (STRONG, FIELDS.key));

        let dev = settings(&none, "", &[]);
        assert_eq!(
            dev.checked("http://127.0.0.1:8000").unwrap().expose(),
            DEVELOPMENT_KEK
        );
        assert_eq!(
            field_of(dev.checked("https://hub.example").unwrap_err()),
            FIELDS.key
        );
        assert_eq!(
            settings(&inline, "", &[])
                .checked("https://hub.example")
                .unwrap()
                .expose(),
            STRONG
        );
        assert!(dev.deployment_keys().is_empty());
        let others = [Secret::new(DEVELOPMENT_KEK)];
        let named: Vec<&str> = settings(&inline, "", &others)
            .deployment_keys()
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(named, [FIELDS.key, FIELDS.others]);
    }
}
