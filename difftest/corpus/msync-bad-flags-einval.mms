a = mmap 0 1p rw private|anonymous
msync $a 1p 8              => EINVAL
msync $a 1p 0x100          => EINVAL
