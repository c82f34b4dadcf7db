a = mmap 0 1p rw private|anonymous
mprotect $a 1p 0x10        => EINVAL
mprotect $a 1p 0x100       => EINVAL
