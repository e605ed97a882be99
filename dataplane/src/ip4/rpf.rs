//! Reverse-path filtering of what comes in on a router interface (RFC 3704
//! 2.2 and 2.3; Linux's `rp_filter`).

use crate::l2::BridgeId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How strictly a router interface checks the source of what comes in.
///
/// The default is `strict`: the labs patchbay builds route symmetrically
/// (a few bridges, static routes), where strict filtering stops spoofed
/// sources at once, including addresses of a subnet connected elsewhere.
/// A lab with asymmetric routes sets `loose`, as most Linux distributions
/// do by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RpFilter {
    /// No check.
    Off,
    /// Some route leads back to the source (a default route counts).
    Loose,
    /// The route back to the source leaves by the bridge it came in on.
    #[default]
    Strict,
}

impl RpFilter {
    pub fn name(self) -> &'static str {
        match self {
            RpFilter::Off => "off",
            RpFilter::Loose => "loose",
            RpFilter::Strict => "strict",
        }
    }

    /// Whether a packet that came in on `in_bridge` passes, given the bridge
    /// the route to its source leaves by (`None`: no route).
    pub fn passes(self, back: Option<BridgeId>, in_bridge: BridgeId) -> bool {
        match self {
            RpFilter::Off => true,
            RpFilter::Loose => back.is_some(),
            RpFilter::Strict => back == Some(in_bridge),
        }
    }
}

impl fmt::Display for RpFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RpFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<RpFilter, String> {
        match s {
            "off" | "0" => Ok(RpFilter::Off),
            "strict" | "1" => Ok(RpFilter::Strict),
            "loose" | "2" => Ok(RpFilter::Loose),
            _ => Err(format!(
                "rp_filter must be strict, loose or off (1, 2 or 0), not '{s}'"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert!(RpFilter::Strict.passes(Some(1), 1));
        assert!(!RpFilter::Strict.passes(Some(2), 1));
        assert!(!RpFilter::Loose.passes(None, 1));
        assert!(RpFilter::Loose.passes(Some(2), 1));
        assert!(RpFilter::Off.passes(None, 1));
        assert_eq!("2".parse(), Ok(RpFilter::Loose));
        assert!("maybe".parse::<RpFilter>().is_err());
    }
}
