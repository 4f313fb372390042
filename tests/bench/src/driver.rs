//! The loop that times the two JITs against each other in the filter
//! benchmark's code layouts: machine code of our own, the same bytes for
//! zbpf's JIT and FreeBSD's bpf_jitter but for the call's arguments,
//! copied like their codes to a chosen offset into a fresh page.
//!
//! Why not a Rust loop: each JIT would have its own instance of it, which
//! the compiler places where it will, and that placement moved zbpf's JIT /
//! bpf_jitter from 0.75× to 0.88× between two builds that differed in one
//! unrelated function (2026-12-06), without a byte of either JIT changing.
//! Here the loop is a variable of the layout, the same for both sides.
//!
//! Per packet the loop loads the packet's pointer and lengths from a slot,
//! calls the code as its caller in the kernel does, and adds the answer to
//! a sum:
//! - zbpf: `f(head, head_len, wirelen, mem)`, where `mem` is 16 words zeroed
//!   before each call for a program that uses scratch memory (as the
//!   engine's `Program::run` zeroes them), else null; the answer is the
//!   low half of the result, as `Program::run` takes it for a whole packet
//!   (a `FALLBACK`'s low half is 0, the answer then);
//! - bpf_jitter: `f(packet, wirelen, buflen)` (`bpf_filter_func`).

use crate::jitter::Code;

/// One packet as the loop reads it.
#[repr(C)]
pub struct Slot {
    pub ptr: *const u8,
    pub len: u64,
    pub wirelen: u64,
}

impl Slot {
    pub fn new(pkt: &[u8], wirelen: u32) -> Self {
        Slot { ptr: pkt.as_ptr(), len: pkt.len() as u64, wirelen: u64::from(wirelen) }
    }
}

/// Whose code the loop calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Callee {
    /// zbpf's JIT; `mem`: the program uses scratch memory.
    Zbpf { mem: bool },
    /// FreeBSD's bpf_jitter.
    Jitter,
}

/// Bytes of stack below the saved registers: the scratch words, and the
/// 16-byte alignment of the stack at the call.
const FRAME: u8 = 0x48;

/// The loop's machine code: `u64 f(const Slot *slots, u64 n, u64 reps,
/// const u8 *code)`, the sum of the answers over `reps` passes of the
/// `n` slots. System V AMD64; the callee may clobber what the convention
/// lets it.
pub fn emit(callee: Callee) -> Vec<u8> {
    let mut c: Vec<u8> = Vec::new();
    // push rbx, rbp, r12, r13, r14, r15; sub rsp, FRAME
    c.extend_from_slice(&[0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57]);
    c.extend_from_slice(&[0x48, 0x83, 0xec, FRAME]);
    c.extend_from_slice(&[0x49, 0x89, 0xfc]); // mov r12, rdi: the first slot
    c.extend_from_slice(&[0x48, 0x6b, 0xf6, 0x18]); // imul rsi, rsi, 24
    c.extend_from_slice(&[0x4c, 0x8d, 0x2c, 0x37]); // lea r13, [rdi + rsi]: the end
    c.extend_from_slice(&[0x49, 0x89, 0xd6]); // mov r14, rdx: passes left
    c.extend_from_slice(&[0x49, 0x89, 0xcf]); // mov r15, rcx: the code
    c.extend_from_slice(&[0x31, 0xed]); // xor ebp, ebp: the sum
    let pass = c.len();
    c.extend_from_slice(&[0x4d, 0x85, 0xf6]); // test r14, r14
    c.extend_from_slice(&[0x74, 0x00]); // jz done
    let to_done = c.len() - 1;
    c.extend_from_slice(&[0x4c, 0x89, 0xe3]); // mov rbx, r12: the slot
    let packet = c.len();
    c.extend_from_slice(&[0x48, 0x8b, 0x3b]); // mov rdi, [rbx]
    match callee {
        Callee::Zbpf { mem } => {
            c.extend_from_slice(&[0x48, 0x8b, 0x73, 0x08]); // mov rsi, [rbx + 8]
            c.extend_from_slice(&[0x8b, 0x53, 0x10]); // mov edx, [rbx + 16]
            if mem {
                c.extend_from_slice(&[0x31, 0xc0]); // xor eax, eax
                c.extend_from_slice(&[0x48, 0x89, 0x04, 0x24]); // mov [rsp], rax
                for d in [8u8, 16, 24, 32, 40, 48, 56] {
                    c.extend_from_slice(&[0x48, 0x89, 0x44, 0x24, d]); // mov [rsp + d], rax
                }
                c.extend_from_slice(&[0x48, 0x89, 0xe1]); // mov rcx, rsp
            } else {
                c.extend_from_slice(&[0x31, 0xc9]); // xor ecx, ecx
            }
            c.extend_from_slice(&[0x41, 0xff, 0xd7]); // call r15
            c.extend_from_slice(&[0x89, 0xc0]); // mov eax, eax
        }
        Callee::Jitter => {
            c.extend_from_slice(&[0x8b, 0x73, 0x10]); // mov esi, [rbx + 16]
            c.extend_from_slice(&[0x8b, 0x53, 0x08]); // mov edx, [rbx + 8]
            c.extend_from_slice(&[0x41, 0xff, 0xd7]); // call r15
            c.extend_from_slice(&[0x89, 0xc0]); // mov eax, eax
        }
    }
    c.extend_from_slice(&[0x48, 0x01, 0xc5]); // add rbp, rax
    c.extend_from_slice(&[0x48, 0x83, 0xc3, 0x18]); // add rbx, 24
    c.extend_from_slice(&[0x4c, 0x39, 0xeb]); // cmp rbx, r13
    c.push(0x75); // jne packet
    c.push(rel8(packet, c.len() + 1));
    c.extend_from_slice(&[0x49, 0xff, 0xce]); // dec r14
    c.push(0xeb); // jmp pass
    c.push(rel8(pass, c.len() + 1));
    c[to_done] = rel8(c.len(), to_done + 1);
    c.extend_from_slice(&[0x48, 0x89, 0xe8]); // mov rax, rbp
    c.extend_from_slice(&[0x48, 0x83, 0xc4, FRAME]); // add rsp, FRAME
                                                     // pop r15, r14, r13, r12, rbp, rbx; ret
    c.extend_from_slice(&[0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0xc3]);
    c
}

/// The displacement of a short jump to `to` from the end of the jump at
/// `from` (the loop is far shorter than 128 bytes).
fn rel8(to: usize, from: usize) -> u8 {
    let rel = i8::try_from(to as isize - from as isize).expect("the loop's jumps are short");
    rel as u8
}

/// The loop for one callee, copied to start `offset` bytes into a page.
pub struct Driver {
    code: Code,
}

type LoopFn = unsafe extern "C" fn(*const Slot, u64, u64, *const u8) -> u64;

impl Driver {
    pub fn new(callee: Callee, offset: usize) -> Result<Self, String> {
        Ok(Driver { code: Code::place(&emit(callee), offset)? })
    }

    /// The sum of the answers of `reps` passes of `target` over `slots`.
    ///
    /// # Safety
    /// `target` must be code of this driver's callee kind, compiled from a
    /// valid program, and every slot a live packet of `len` bytes.
    pub unsafe fn drive(&self, slots: &[Slot], reps: usize, target: *const u8) -> u64 {
        // SAFETY: the placed code is `emit`'s function, of this signature.
        let f = unsafe { std::mem::transmute::<*const u8, LoopFn>(self.code.start()) };
        // SAFETY: the loop reads the `slots.len()` slots and calls `target`
        // as its kind is called (the caller vouches for both).
        unsafe { f(slots.as_ptr(), slots.len() as u64, reps as u64, target) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The jumps land where they must: decoded by hand, the loop's short
    /// jumps go back to the packet and pass starts and forward to the exit.
    #[test]
    fn jumps_land_on_the_loop_starts() {
        for callee in [Callee::Zbpf { mem: false }, Callee::Zbpf { mem: true }, Callee::Jitter] {
            let c = emit(callee);
            assert_eq!(c.last(), Some(&0xc3), "{callee:?}");
            // jz done (first 0x74): lands on `mov rax, rbp`.
            let jz = c.iter().position(|&b| b == 0x74).expect("jz");
            let done = (jz + 2) as isize + isize::from(c[jz + 1] as i8);
            assert_eq!(&c[done as usize..done as usize + 3], &[0x48, 0x89, 0xe8]);
            // jne packet: lands on `mov rdi, [rbx]`.
            let jne = c.iter().rposition(|&b| b == 0x75).expect("jne");
            let packet = (jne + 2) as isize + isize::from(c[jne + 1] as i8);
            assert_eq!(&c[packet as usize..packet as usize + 3], &[0x48, 0x8b, 0x3b]);
        }
    }
}
