//! What the benchmark suite (`zbpf-bench`) and the criterion bench of the
//! filter (`filter.rs`) share.

pub mod workload;
