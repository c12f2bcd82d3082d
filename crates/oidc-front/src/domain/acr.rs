//! Assurance levels: an ordered ladder (configuration), lowest first.

use std::fmt;

use crate::error::FrontError;

/// A level of the front's ladder; only [`AcrLadder::parse`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acr(String);

impl Acr {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `values` (an SP's or an IdP's levels) lists this one.
    pub fn is_among(&self, values: &[String]) -> bool {
        values.iter().any(|v| v == &self.0)
    }
}

impl fmt::Display for Acr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug)]
pub struct AcrLadder {
    levels: Vec<String>,
}

impl AcrLadder {
    pub fn new(levels: Vec<String>) -> Self {
        AcrLadder { levels }
    }

    pub fn levels(&self) -> &[String] {
        &self.levels
    }

    pub fn rank(&self, acr: &str) -> Option<usize> {
        self.levels.iter().position(|l| l == acr)
    }

    /// A level of this ladder; any other value is an unknown acr.
    pub fn parse(&self, raw: &str) -> Result<Acr, FrontError> {
        match self.rank(raw) {
            Some(r) => Ok(Acr(self.levels[r].clone())),
            None => Err(FrontError::UnknownAcr(raw.to_string())),
        }
    }

    /// The lowest level of this ladder that `values` lists.
    pub fn lowest_among(&self, values: &[String]) -> Option<Acr> {
        self.levels
            .iter()
            .find(|l| values.contains(l))
            .map(|l| Acr(l.clone()))
    }

    /// The ladder's lowest level.
    pub fn lowest(&self) -> Option<Acr> {
        self.levels.first().map(|l| Acr(l.clone()))
    }

    /// Every level at or above `min`, lowest first.
    pub fn at_least(&self, min: &str) -> Vec<String> {
        match self.rank(min) {
            Some(r) => self.levels[r..].to_vec(),
            None => Vec::new(),
        }
    }

    /// The lowest of the values asked; each must be a known level.
    pub fn minimum_of(&self, asked: &[String]) -> Result<Option<Acr>, FrontError> {
        let mut best: Option<Acr> = None;
        for a in asked {
            let acr = self.parse(a)?;
            best = match best {
                Some(b) if self.rank(b.as_str()) <= self.rank(acr.as_str()) => Some(b),
                _ => Some(acr),
            };
        }
        Ok(best)
    }

    /// Whether `offered` (e.g. an IdP's levels) reaches `min`.
    pub fn any_reaches(&self, offered: &[String], min: &str) -> bool {
        let Some(m) = self.rank(min) else {
            return false;
        };
        offered.iter().any(|o| self.rank(o).is_some_and(|r| r >= m))
    }

    /// The highest of `offered` that is known.
    pub fn highest(&self, offered: &[String]) -> Option<String> {
        offered
            .iter()
            .filter_map(|o| self.rank(o))
            .max()
            .map(|r| self.levels[r].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> AcrLadder {
        AcrLadder::new(vec!["eidas1".into(), "eidas2".into(), "eidas3".into()])
    }

    #[test]
    fn ordering_and_reach() {
        let l = ladder();
        assert_eq!(l.at_least("eidas2"), vec!["eidas2", "eidas3"]);
        assert_eq!(
            l.minimum_of(&["eidas3".into(), "eidas2".into()])
                .unwrap()
                .map(|a| a.to_string()),
            Some("eidas2".into())
        );
        assert_eq!(
            l.minimum_of(&["eidas3".into(), "loa9".into()])
                .unwrap_err()
                .code(),
            "acr_unknown"
        );
        assert!(l.any_reaches(&["eidas1".into(), "eidas3".into()], "eidas2"));
        assert!(!l.any_reaches(&["eidas1".into()], "eidas2"));
        assert_eq!(
            l.highest(&["eidas1".into(), "eidas2".into()]),
            Some("eidas2".into())
        );
    }

    #[test]
    fn an_acr_is_a_level_of_the_ladder() {
        let l = ladder();
        assert_eq!(l.parse("eidas2").unwrap().as_str(), "eidas2");
        for bad in ["loa4", "EIDAS2", "", "eidas2 "] {
            assert_eq!(l.parse(bad).unwrap_err().code(), "acr_unknown", "{bad:?}");
        }
        let sp: Vec<String> = vec!["eidas3".into(), "eidas1".into(), "loa4".into()];
        assert_eq!(l.lowest_among(&sp).unwrap().as_str(), "eidas1");
        assert_eq!(l.lowest_among(&["loa4".into()]), None);
        assert_eq!(l.lowest().unwrap().as_str(), "eidas1");
        assert!(l.parse("eidas3").unwrap().is_among(&sp));
        assert!(!l.parse("eidas2").unwrap().is_among(&sp));
    }
}
