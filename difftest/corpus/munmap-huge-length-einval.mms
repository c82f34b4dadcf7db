a = mmap 0 1p rw private|anonymous
munmap $a 0x800000000000   => EINVAL
munmap $a -4096            => EINVAL
