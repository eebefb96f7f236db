//! Planning: resolve a pipeline into tasks (market × symbol × interval × UTC window) with request and weight estimates.
