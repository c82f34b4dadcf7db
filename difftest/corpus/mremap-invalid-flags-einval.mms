a = mmap 0 2p rw private|anonymous
mremap $a 2p 3p 8          => EINVAL
mremap $a 2p 3p 0x100      => EINVAL
