//! split-sim library: simulation, load check and mock upstream.
