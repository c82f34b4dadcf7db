a = mmap 0 1p rw private|anonymous
munmap $a 0                => EINVAL
