//! Replays the committed fuzz corpus (filled in below).
