//! The built-in Binance-compatible exchange simulator.
