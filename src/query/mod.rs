//! Queries over a [`crate::source::SeriesSource`]. (query helper)
