//! Architecture-specific parts (Linux's `arch/*/mm` and `arch/*/include/asm`).
//! Only x86-64 exists; the rest of the core reaches it through `arch::x86_64`.

pub mod x86_64;
