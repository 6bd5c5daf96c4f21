//! Anonymised aggregates over predefined groups (D.111-53, D.111-57).

/// When a cell of an aggregate is suppressed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Suppression {
    /// Fewest active meters of a published cell (D.111-53: 10).
    pub min_meters: u32,
    /// Fewest active meters of a building cell shown to public bodies (D.111-57: 2).
    pub building_min_meters: u32,
    /// When set, a cell where one meter holds more than this share of the energy is suppressed.
    pub max_share: Option<f64>,
}

impl Default for Suppression {
    fn default() -> Self {
        Suppression {
            min_meters: 10,
            building_min_meters: 2,
            max_share: None,
        }
    }
}
