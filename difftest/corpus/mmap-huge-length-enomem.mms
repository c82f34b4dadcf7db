# A length beyond the address space cannot be mapped.
mmap 0 0x800000000000 rw private|anonymous          => ENOMEM
mmap 0 0xfffffffffffff000 rw private|anonymous      => ENOMEM
