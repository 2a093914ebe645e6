//! Native mirror handler (stub).
