//! The durable store. (engine helper)
