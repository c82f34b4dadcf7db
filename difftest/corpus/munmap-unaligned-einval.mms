a = mmap 0 2p rw private|anonymous
munmap $a+1 1p             => EINVAL
munmap $a+4095 1           => EINVAL
