# PROT_GROWSDOWN is for mprotect; mmap rejects it.
mmap 0 1p rw|growsdown private|anonymous
