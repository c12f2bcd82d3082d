//! Assurance levels: an ordered ladder (configuration), lowest first.

use crate::error::FrontError;

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

    /// Every level at or above `min`, lowest first.
    pub fn at_least(&self, min: &str) -> Vec<String> {
        match self.rank(min) {
            Some(r) => self.levels[r..].to_vec(),
            None => Vec::new(),
        }
    }

    /// The lowest of the values asked; each must be a known level.
    pub fn minimum_of(&self, asked: &[String]) -> Result<Option<String>, FrontError> {
        let mut best: Option<usize> = None;
        for a in asked {
            let r = self
                .rank(a)
                .ok_or_else(|| FrontError::UnknownAcr(a.clone()))?;
            best = Some(best.map_or(r, |b| b.min(r)));
        }
        Ok(best.map(|r| self.levels[r].clone()))
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
            l.minimum_of(&["eidas3".into(), "eidas2".into()]).unwrap(),
            Some("eidas2".into())
        );
        assert!(l.minimum_of(&["loa9".into()]).is_err());
        assert!(l.any_reaches(&["eidas1".into(), "eidas3".into()], "eidas2"));
        assert!(!l.any_reaches(&["eidas1".into()], "eidas2"));
        assert_eq!(
            l.highest(&["eidas1".into(), "eidas2".into()]),
            Some("eidas2".into())
        );
    }
}
