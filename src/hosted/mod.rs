//! The userspace platform (feature `hosted`): the same engine as the kernel
//! module, run against simulated interfaces and a simulated user process,
//! plus the tools around it (capture files, the real libpcap, a consumer
//! API for both buffer modes).
//!
//! | module | concept |
//! | --- | --- |
//! | `platform` | the [`Platform`](crate::platform::Platform) implementation |
//! | `net` | simulated interfaces |
//! | `process` | user memory as the kernel reaches it; shared buffers |
//! | `sim` | the machine and its syscall-shaped API |
//! | `pcap` | capture files |
//! | `libpcap` | the real libpcap's compiler and interpreter |

pub mod capi;
pub mod consumer;
pub mod libpcap;
pub mod native;
pub mod net;
pub mod pcap;
pub mod platform;
pub mod process;
pub mod sim;
pub mod traffic;
